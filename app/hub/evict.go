package hub

// makeRoom frees a slot in m, which holds at most max entries, before one more is added: it
// drops the entries unneeded reports as no longer worth keeping, then arbitrary ones until
// there is room. The token cache and the rate limiters share it, so that neither can grow
// without bound however many distinct keys arrive. unneeded may be nil (drop arbitrary ones only).
func makeRoom[K comparable, V any](m map[K]V, max int, unneeded func(V) bool) {
	if len(m) < max {
		return
	}
	if unneeded != nil {
		for k, v := range m {
			if unneeded(v) {
				delete(m, k)
			}
		}
	}
	for k := range m {
		if len(m) < max {
			return
		}
		delete(m, k)
	}
}
