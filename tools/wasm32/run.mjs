// Run a MicroPython script on the official MicroPython WebAssembly port: a real 32-bit
// MicroPython (4-byte pointers, 31-bit small ints: the ESP32's object model), under Node.
//
//   node tools/wasm32/run.mjs [-X heapsize=160k] [-X pystack=N] [--whole] [--heap-report]
//                             script.py [args...]
//
// Like the unix port's `micropython`: MICROPYPATH (colon-separated) gives the import path;
// each of its directories (and the script's own, which comes first as sys.path[0]) is copied
// into the in-memory file system at the same absolute path (.py and .mpy files only), the
// working directory is the caller's (empty: files the script writes stay in memory),
// sys.argv is [script, args...]; stdout and stderr are streamed line by line; an uncaught
// exception prints its traceback on stderr and exits 1 (SystemExit exits with its code).
// os.urandom and os.getenv, which this port lacks, are added (see PORT_DIR below).
//
// The port's collector runs only at the top level (it cannot scan WebAssembly's own stack):
// a collection asked for inside Python code is deferred, and the heap grows beyond heapsize
// instead of failing. So that `gc.collect(); gc.mem_alloc()` measures what a board would
// hold, the script runs one top-level statement at a time (same __main__ globals, same line
// numbers, every statement compiled before the first runs) with a collection between
// statements; a top-level heap_lock() ... heap_unlock() or gc.disable() ... gc.enable() window
// runs as one unit (nothing can be run from the host under the lock, and mem_alloc deltas
// with the collector off stay exact); --whole runs the script as one unit. heapsize is
// therefore the initial heap, not a bound: --heap-report prints the GC heap's final total
// (the peak, split heaps are never returned) on stderr.
//
// Exit codes: the script's (0, SystemExit's code, 1 on an uncaught exception), 2 bad usage.

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

function usage(msg) {
  process.stderr.write("run.mjs: " + msg + "\n"
    + "usage: node run.mjs [-X heapsize=N[k|m]] [-X pystack=N] [--whole] [--heap-report]"
    + " script.py [args...]\n");
  process.exit(2);
}

function size(text) {
  const m = /^(\d+)([kKmM]?)$/.exec(text);
  if (!m) usage("bad size " + text);
  return parseInt(m[1], 10) * ({ "": 1, k: 1024, m: 1048576 }[m[2].toLowerCase()]);
}

let heapsize = 160 * 1024;
let pystack = 16 * 1024;
let whole = false;
let heapReport = false;
let i = 2;
const argv = process.argv;
for (; i < argv.length && argv[i].startsWith("-"); i++) {
  const a = argv[i];
  if (a === "-X" && i + 1 < argv.length) {
    const [k, v] = argv[++i].split("=", 2);
    if (k === "heapsize") heapsize = size(v);
    else if (k === "pystack") pystack = size(v);
    else usage("unknown -X option " + k);
  } else if (a === "--whole") whole = true;
  else if (a === "--heap-report") heapReport = true;
  else usage("unknown option " + a);
}
if (i >= argv.length) usage("no script");
const script = path.resolve(argv[i]);
const scriptArgs = argv.slice(i + 1);
let source;
try {
  source = fs.readFileSync(script, "utf8");
} catch (e) {
  usage("cannot read " + script + ": " + e.message);
}

// Split the source into top-level statements: [first line (0-based), text]. A statement
// starts at column 0 outside brackets, strings and continuations; else/elif/except/finally
// continue the compound statement before them and decorators stay with their def/class.
export function topLevel(src) {
  const lines = src.split("\n");
  const chunks = [];
  let depth = 0, triple = null, cont = false, cur = null, decorating = false;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    const start = depth === 0 && triple === null && !cont;
    const code = start && /^[^\s#]/.test(line);
    if (code && !/^(else|elif|except|finally)\b/.test(line) && !decorating) {
      cur = { line: n, text: [] };
      chunks.push(cur);
    }
    if (code) decorating = line.startsWith("@");
    if (cur === null) {
      cur = { line: n, text: [] };
      chunks.push(cur);
    }
    cur.text.push(line);
    // scan the line for brackets, strings and a trailing backslash
    cont = false;
    for (let c = 0; c < line.length; c++) {
      const ch = line[c];
      if (triple !== null) {
        if (ch === "\\") c++;
        else if (line.startsWith(triple, c)) {
          c += 2;
          triple = null;
        }
        continue;
      }
      if (ch === "#") break;
      if (ch === "'" || ch === '"') {
        if (line.startsWith(ch.repeat(3), c)) {
          triple = ch.repeat(3);
          c += 2;
          continue;
        }
        for (c++; c < line.length && line[c] !== ch; c++) if (line[c] === "\\") c++;
        continue;
      }
      if ("([{".includes(ch)) depth++;
      else if (")]}".includes(ch)) depth = Math.max(0, depth - 1);
      else if (ch === "\\" && c === line.length - 1) cont = true;
    }
  }
  // Nothing can be run from the host while the heap is locked, and a statement run from the
  // host leaves a little garbage: a top-level heap_lock() or gc.disable() stays in one unit
  // with the statements up to its heap_unlock() or gc.enable().
  const units = [];
  let locks = 0, off = 0;
  const count = (code, re) => (code.match(re) || []).length;
  for (const ch of chunks) {
    const text = ch.text.join("\n") + "\n";
    if (locks > 0 || off > 0) units[units.length - 1][1] += text;
    else units.push([ch.line, text]);
    const code = text.replace(/#.*$/gm, "");
    locks = Math.max(0, locks + count(code, /\bheap_lock\s*\(/g)
      - count(code, /\bheap_unlock\s*\(/g));
    off = Math.max(0, off + count(code, /\bgc\.disable\s*\(/g) - count(code, /\bgc\.enable\s*\(/g));
  }
  return units;
}

// The import path, as the unix port builds it: the script's directory, then MICROPYPATH.
const sysPath = [path.dirname(script)];
for (const p of (process.env.MICROPYPATH || "").split(":")) {
  if (p && !sysPath.includes(p)) sysPath.push(p === ".frozen" ? p : path.resolve(p));
}

let stdoutHook = null;
const mp = await loadMicroPython({
  heapsize,
  pystack,
  stdout: (line) => (stdoutHook ? stdoutHook(line) : process.stdout.write(line + "\n")),
  stderr: (line) => process.stderr.write(line + "\n"),
});
const FS = mp.FS;
const copied = new Set();

function copyTree(dir) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return; // like the unix port: a missing path entry is no error
  }
  FS.mkdirTree(dir);
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!e.name.startsWith(".") && e.name !== "__pycache__" && e.name !== "node_modules") {
        copyTree(p);
      }
    } else if (e.isFile() && (e.name.endsWith(".py") || e.name.endsWith(".mpy"))) {
      FS.writeFile(p, fs.readFileSync(p));
    }
  }
}

for (const p of sysPath) {
  if (p === ".frozen" || [...copied].some((d) => p === d || p.startsWith(d + path.sep))) continue;
  copyTree(p);
  copied.add(p);
}
// What the unix port has and this port lacks, added from Python: os.urandom (hosthal.board's
// nonce source; the ESP32 has it too) and os.getenv (the environment of this process). An
// extensible built-in is shadowed by a file of the same name; the file reaches the built-in
// by importing it with sys.path empty.
const PORT_DIR = "/wasm32-port";
FS.mkdirTree(PORT_DIR);
FS.writeFile(PORT_DIR + "/os.py", [
  "import sys",
  "_path = list(sys.path)",
  "sys.path.clear()",
  "try:",
  "    from os import *  # noqa: F403",
  "finally:",
  "    sys.path.extend(_path)",
  "    del _path",
  "if 'urandom' not in globals():",
  "    import random as _random",
  "    _random.seed(" + crypto.randomInt(1, 2 ** 30) + ")",
  "",
  "    def urandom(n):",
  "        return bytes(_random.getrandbits(8) for _ in range(n))",
  "if 'getenv' not in globals():",
  "    import json as _json",
  "    _env = _json.loads(" + JSON.stringify(JSON.stringify(process.env)) + ")",
  "",
  "    def getenv(key, default=None):",
  "        return _env.get(key, default)",
  "",
].join("\n"));
const frozen = sysPath.indexOf(".frozen"); // before the port's frozen os package
sysPath.splice(frozen < 0 ? sysPath.length : frozen, 0, PORT_DIR);
FS.mkdirTree(process.cwd());
FS.chdir(process.cwd());

function flush() {
  const m = mp._module;
  for (const [buf, out] of [["_stdoutBuffer", process.stdout], ["_stderrBuffer", process.stderr]]) {
    if (m[buf] && m[buf].length) {
      out.write(m._textDecoder.decode(new Uint8Array(m[buf])));
      m[buf] = [];
    }
  }
}

function finish(code) {
  flush();
  if (heapReport) {
    let total = null;
    stdoutHook = (line) => {
      const m = /GC: total: (\d+)/.exec(line);
      if (m) total = parseInt(m[1], 10);
    };
    try {
      mp.runPython("import micropython\nmicropython.mem_info()\n");
    } catch {
      // the report is best effort
    }
    stdoutHook = null;
    process.stderr.write("wasm32: heapsize " + heapsize + " B, GC heap total at exit "
      + total + " B\n");
  }
  process.exitCode = code;
}

// The statements are compiled first, all of them (as the unix port compiles the whole
// module before running it), then run one by one from the host: each call from the host is a
// top-level entry, where the collection that run() asks for takes place.
FS.writeFile(PORT_DIR + "/_wasm32.py", [
  "import gc",
  "import micropython",
  "import __main__",
  "codes = []",
  "_g = __main__.__dict__",
  "",
  "def add(src, name):",
  "    codes.append(compile(src, name, 'exec'))",
  "",
  "def run(k, collect):",
  "    exec(codes[k], _g)",
  "    micropython.heap_lock()",
  "    if micropython.heap_unlock():",
  "        while micropython.heap_unlock():",
  "            pass",
  "        raise RuntimeError('the heap is still locked at the end of a top-level statement')",
  "    if collect and gc.isenabled():",
  "        gc.collect()  # deferred by the port: done as the next host call enters",
  "",
].join("\n"));
// __main__'s globals as the unix port leaves them (__name__, __file__) and nothing else: a
// script may rely on its globals dict having room for the names it binds under heap_lock.
const prelude = "__import__('sys').path.clear()\n__import__('sys').path.extend("
  + JSON.stringify(sysPath) + ")\n__import__('sys').argv.clear()\n__import__('sys').argv.extend("
  + JSON.stringify([script, ...scriptArgs]) + ")\n__import__('__main__').__file__ = "
  + JSON.stringify(script) + "\n";
const units = whole ? [[0, source]] : topLevel(source);
try {
  mp.runPython(prelude);
  const helper = mp.pyimport("_wasm32");
  for (const [line, text] of units) helper.add("\n".repeat(line) + text, script);
  for (let k = 0; k < units.length; k++) {
    // (a call through a proxy would keep a reference table growing on the Python heap)
    mp.runPython("__import__('_wasm32').run(" + k + ", " + (whole ? 0 : 1) + ")\n");
  }
  finish(0);
} catch (e) {
  if (e.name !== "PythonError") throw e;
  flush();
  if (e.type === "SystemExit") {
    const m = /SystemExit: (-?\d+)\s*$/.exec(e.message);
    const other = !m && /SystemExit: (.+)\s*$/.exec(e.message);
    if (other) process.stderr.write(other[1] + "\n");
    finish(m ? parseInt(m[1], 10) & 255 : other ? 1 : 0);
  } else {
    const ours = ['  File "' + PORT_DIR + '/_wasm32.py"', '  File "<stdin>", line 1,'];
    process.stderr.write(e.message.split("\n")
      .filter((l) => !ours.some((o) => l.startsWith(o))).join("\n"));
    finish(1);
  }
}
