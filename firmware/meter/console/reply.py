# One console reply: ordered key/value pairs, rendered for a person or as one JSON line.
#
# Values are int, str, bool, None, or a list/tuple of them (one level of nesting: a list of
# rows). Human form: one "key value" line per pair (a list of rows: one line per row, the
# key repeated), then "OK" or "ERROR <E_CODE> <detail>". JSON form: exactly one line,
#   {"ok": true, "cmd": "regs", "e0": 1234, ...}
#   {"ok": false, "cmd": "fail", "error": "E_NOT_BENCH", "detail": "..."}
# keys in the order they were added (the encoder is this module's: MicroPython's json gives
# no key order). Replies are built only when a line is handled, never on the idle path.


def _json_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif o < 0x20 or o > 0x7E:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_value(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _json_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(json_value(x) for x in v) + "]"
    return _json_str(str(v))


def _human_value(v):
    if v is None:
        return "-"
    if v is True:
        return "yes"
    if v is False:
        return "no"
    if isinstance(v, (list, tuple)):
        return " ".join(_human_value(x) for x in v)
    return str(v)


class Reply:
    def __init__(self, cmd):
        self.cmd = cmd
        self.pairs = []
        self.error = None  # E_ code when the command failed
        self.detail = ""

    def add(self, key, value):
        self.pairs.append((key, value))
        return self

    def rows(self, key, rows):
        """A list of rows (each a list/tuple): one human line per row."""
        self.pairs.append((key, rows if rows else []))
        return self

    def fail(self, code, detail=""):
        self.error = code
        self.detail = detail
        return self

    def json(self):
        parts = ['"ok": ' + ("false" if self.error else "true"), '"cmd": ' + _json_str(self.cmd)]
        if self.error:
            parts.append('"error": ' + _json_str(self.error))
            parts.append('"detail": ' + _json_str(self.detail))
        for k, v in self.pairs:
            parts.append(_json_str(k) + ": " + json_value(v))
        return "{" + ", ".join(parts) + "}\n"

    def human(self):
        lines = []
        for k, v in self.pairs:
            if isinstance(v, (list, tuple)) and v and isinstance(v[0], (list, tuple)):
                for row in v:
                    lines.append(k + " " + _human_value(row))
            else:
                lines.append((k + " " + _human_value(v)).rstrip())
        if self.error:
            lines.append(("ERROR %s %s" % (self.error, self.detail)).rstrip())
        else:
            lines.append("OK")
        return "\n".join(lines) + "\n"
