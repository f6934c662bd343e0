package client

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
)

// goroutines is a set of running goroutines, by ID: those that call the
// application's handlers, so that Close can tell it is called from one of
// them (and must not wait for it). Go gives goroutines no identity; the ID
// is read from the first line of runtime.Stack ("goroutine 42 [running]:"),
// once when a goroutine enters and once per Close, never on a hot path.
type goroutines struct {
	ids sync.Map // uint64 → struct{}
}

// enter adds the calling goroutine; the returned func removes it.
func (g *goroutines) enter() func() {
	id := goid()
	g.ids.Store(id, struct{}{})
	return func() { g.ids.Delete(id) }
}

// running reports whether the calling goroutine is in the set.
func (g *goroutines) running() bool {
	_, ok := g.ids.Load(goid())
	return ok
}

func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("client: cannot read the goroutine ID from runtime.Stack: " + err.Error())
	}
	return id
}
