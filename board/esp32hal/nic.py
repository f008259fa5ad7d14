# Network interfaces for the B-route radio modules: made on first use, here in board/ only.


def wlan():
    """The ESP32's WLAN in station mode."""
    import network

    return network.WLAN(network.STA_IF)


# Ethernet: the ESP32 has an EMAC for RMII PHYs (fixed data pins 19, 21, 22, 25, 26, 27 and
# REF_CLK on GPIO0; MDC/MDIO on any pins); the S3 and C3 have none, only SPI PHYs (network.LAN
# with spi=, cs=, int=; MicroPython >= 1.24 built with the PHY's CONFIG_ETH_SPI_ETHERNET_*).
EMAC_CHIPS = ("esp32",)
EMAC_PHYS = ("LAN8720", "IP101", "RTL8201", "DP83848", "KSZ8041", "KSZ8081")
SPI_PHYS = ("W5500", "KSZ8851SNL", "DM9051")
_PIN_ARGS = ("mdc", "mdio", "power", "reset", "cs", "int")


def lan(cfg):
    """A callable making network.LAN from the board's LAN_ARGS (data: phy_type names
    network.PHY_<name>, pins are GPIO numbers, spi is {"id", "sck", "mosi", "miso",
    "baudrate"}, ref_clk_mode "in"/"out"). Checked here, at build_hal: a board without LAN_ARGS,
    an RMII PHY on a chip without EMAC, or a PHY this firmware lacks raises ValueError."""
    import network

    args = getattr(cfg, "LAN_ARGS", None)
    if not args:
        raise ValueError("E_LAN_NONE: %s offers no Ethernet (no LAN_ARGS)" % cfg.BOARD)
    phy = args.get("phy_type")
    if phy in EMAC_PHYS:
        if cfg.CHIP not in EMAC_CHIPS:
            raise ValueError("E_LAN_NO_EMAC: the %s has no EMAC for %s; use an SPI PHY (%s)"
                             % (cfg.CHIP, phy, ", ".join(SPI_PHYS)))
        need = ("mdc", "mdio")
    elif phy in SPI_PHYS:
        need = ("spi", "cs")
    else:
        raise ValueError("E_LAN_PHY: unknown phy_type %r" % (phy,))
    for k in need + ("phy_addr",):
        if args.get(k) is None:
            raise ValueError("E_LAN_ARGS: %s needs %s" % (phy, k))
    phy_type = getattr(network, "PHY_" + phy, None)
    if phy_type is None:
        raise ValueError("E_LAN_PHY: this firmware has no network.PHY_" + phy)

    def make():
        from machine import SPI, Pin

        kw = {"phy_type": phy_type, "phy_addr": args["phy_addr"]}
        for k in _PIN_ARGS:
            if args.get(k) is not None:
                kw[k] = Pin(args[k])
        s = args.get("spi")
        if s is not None:
            kw["spi"] = SPI(s["id"], baudrate=s["baudrate"], sck=Pin(s["sck"]),
                            mosi=Pin(s["mosi"]), miso=Pin(s["miso"]))
        mode = args.get("ref_clk_mode")
        if mode is not None:
            kw["ref_clk_mode"] = Pin.OUT if mode == "out" else Pin.IN
        return network.LAN(**kw)

    return make
