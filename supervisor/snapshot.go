package supervisor

import "sync/atomic"

// atomicSnapshot holds the newest published snapshot; readers never lock
// the actor.
type atomicSnapshot struct{ p atomic.Pointer[Snapshot] }

func (s *atomicSnapshot) Store(v *Snapshot) { s.p.Store(v) }
func (s *atomicSnapshot) Load() *Snapshot   { return s.p.Load() }
