# Network interfaces for the B-route radio modules: made on first use, here in board/ only.


def wlan():
    """The ESP32's WLAN in station mode."""
    import network

    return network.WLAN(network.STA_IF)


def lan(args):
    """A callable making network.LAN with the board's PHY arguments (mdc, mdio, phy_type...)."""
    def make():
        import network

        return network.LAN(**args)

    return make
