package mvcc

// watcherGroup is a set of watchers indexed by what they watch, so a
// change reaches the watchers of its key without visiting all the others:
// single-key watchers by key, range watchers in an interval tree
// (rangeIndex).
type watcherGroup struct {
	all    map[*watcher]struct{}
	byKey  map[string]map[*watcher]struct{}
	ranges rangeIndex
}

func newWatcherGroup() *watcherGroup {
	return &watcherGroup{all: map[*watcher]struct{}{}, byKey: map[string]map[*watcher]struct{}{}}
}

func (g *watcherGroup) add(wt *watcher) {
	if _, ok := g.all[wt]; ok {
		return
	}
	g.all[wt] = struct{}{}
	if len(wt.End) > 0 {
		g.ranges.add(wt)
		return
	}
	set := g.byKey[string(wt.Key)]
	if set == nil {
		set = map[*watcher]struct{}{}
		g.byKey[string(wt.Key)] = set
	}
	set[wt] = struct{}{}
}

func (g *watcherGroup) remove(wt *watcher) {
	if _, ok := g.all[wt]; !ok {
		return
	}
	delete(g.all, wt)
	if len(wt.End) > 0 {
		g.ranges.remove(wt)
		return
	}
	set := g.byKey[string(wt.Key)]
	delete(set, wt)
	if len(set) == 0 {
		delete(g.byKey, string(wt.Key))
	}
}

func (g *watcherGroup) has(wt *watcher) bool {
	_, ok := g.all[wt]
	return ok
}

func (g *watcherGroup) len() int { return len(g.all) }

// watching calls fn for every watcher whose range holds key.
func (g *watcherGroup) watching(key []byte, fn func(*watcher)) {
	for wt := range g.byKey[string(key)] {
		fn(wt)
	}
	g.ranges.stab(key, fn)
}
