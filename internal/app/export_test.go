package app

import "net"

// UseListen makes Run open its listeners with listen instead of net.Listen.
func (a *App) UseListen(listen func(network, address string) (net.Listener, error)) {
	a.listen = listen
}
