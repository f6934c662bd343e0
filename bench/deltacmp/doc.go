// Package deltacmp compares the edge's VCDIFF encoder (codec/vcdiff) with
// fossil delta (github.com/centrifugal/fdelta, Centrifugo's delta format)
// on the payload shapes an odds feed sends: delta size and encode time.
// Run: go test -run TestSizes -v ./deltacmp; go test -run '^$' -bench . ./deltacmp
package deltacmp
