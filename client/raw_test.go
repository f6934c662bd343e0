package client_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/feedgate/feedgate/codec"
)

// encodeRaw encodes m as one frame in format f, whatever its type: for
// frames the codec does not know.
func encodeRaw(t *testing.T, f codec.Format, m map[string]any) []byte {
	t.Helper()
	var b []byte
	var err error
	if f.Binary() {
		b, err = msgpack.Marshal(m)
	} else {
		b, err = json.Marshal(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
