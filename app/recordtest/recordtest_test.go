package recordtest_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/stagely/stagely/app/recordtest"
)

func TestList_KeepsEveryItemOfConcurrentWritersAndHandsOutCopies(t *testing.T) {
	t.Parallel()
	var l recordtest.List[int]
	if got := l.All(); len(got) != 0 {
		t.Fatalf("zero List = %v, want empty", got)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				l.Add(w*100 + i)
				_ = l.All()
			}
		}()
	}
	wg.Wait()
	got := l.All()
	slices.Sort(got)
	if len(got) != 800 || got[0] != 0 || got[799] != 799 {
		t.Fatalf("after 8 writers of 100: %d items, want 0..799", len(got))
	}
	got[0] = -1
	if l.All()[0] == -1 {
		t.Error("All returned the List's own slice, not a copy")
	}
}
