package codec

import "strings"

// SystemChannelPrefix begins the names of the edges' own channels on the
// backbone (revocations). "$" is outside the channel-name alphabet, so no
// client can ever attach, publish or read history on a system channel:
// ValidateChannel refuses every such name. Only the backbone envelope
// accepts them (ValidateWireChannel).
const SystemChannelPrefix = "$feedgate:"

// RevocationsChannel carries revocations between edges.
const RevocationsChannel = SystemChannelPrefix + "revocations"

// IsSystemChannel reports whether name is an edge's own channel.
func IsSystemChannel(name string) bool {
	return strings.HasPrefix(name, SystemChannelPrefix) && ValidateChannel(name[1:]) == nil
}

// ValidateWireChannel accepts what may travel on the backbone: a client
// channel name or a system channel.
func ValidateWireChannel(name string) error {
	if IsSystemChannel(name) {
		return nil
	}
	return ValidateChannel(name)
}
