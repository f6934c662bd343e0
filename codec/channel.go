package codec

// MaxChannelLen is the longest channel name in bytes. 128 leaves room for
// "sport:league:event:market" style names while keeping the Pub/Sub ordering
// key (limit 1 KiB) and per-message attributes small.
const MaxChannelLen = 128

// ValidateChannel reports whether name is a valid channel name: 1 to
// MaxChannelLen bytes of ASCII letters, digits and the punctuation _ - . : @ / =
// (docs/protocol.md, "Channel names").
func ValidateChannel(name string) error {
	if name == "" {
		return Errorf(CodeInvalidChannel, "channel name is empty")
	}
	if len(name) > MaxChannelLen {
		return Errorf(CodeInvalidChannel, "channel name is %d bytes, the limit is %d", len(name), MaxChannelLen)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte[name[i]] {
			return Errorf(CodeInvalidChannel, "channel name has a forbidden character at byte %d", i)
		}
	}
	return nil
}

var channelByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-.:@/=" {
		t[c] = true
	}
	return t
}()
