package hub

import (
	"net/http"
	"net/netip"
	"strings"
)

// sourceKey is what handshake limits are counted per: an IPv4 address, or the /64 an
// IPv6 address is in (one machine usually holds a whole /64, so per-address limits would
// be no limit at all). The zero value stands for an address that could not be read.
type sourceKey netip.Prefix

// String is the address, or the /64, as logged.
func (k sourceKey) String() string {
	p := netip.Prefix(k)
	if !p.IsValid() {
		return "unknown"
	}
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

func keyOf(a netip.Addr) sourceKey {
	a = a.Unmap()
	if !a.IsValid() {
		return sourceKey{}
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return sourceKey(p)
}

// clientAddr is where the request comes from: the peer's address, or, when the peer is a
// trusted proxy, the address it forwarded in X-Forwarded-For. The header is read from the
// right (the entry the nearest proxy appended) past every trusted proxy; the first entry
// that is not one is the client. Entries to its left were written by the client and prove
// nothing. A malformed entry stops the walk at the hop that appended it.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	entries := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(entries) - 1; i >= 0; i-- {
		e := strings.TrimSpace(entries[i])
		if e == "" && len(entries) == 1 {
			break // no header at all
		}
		hop, ok := parseHop(e)
		if !ok {
			return addr
		}
		addr = hop
		if !isTrusted(addr, trusted) {
			return addr
		}
	}
	return addr
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a port or brackets.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
