package gateway

import (
	"fmt"
	"strconv"
	"strings"
)

// origin is a parsed Web origin (RFC 6454): scheme, host and port, in
// canonical form (lower case; the scheme's default port made explicit).
type origin struct {
	scheme, host string
	port         int
}

// parseOrigin reads an Origin header value, or an allow-list entry when
// pattern is set (its host may then begin with "*."). Only
// scheme://host[:port] is accepted: no path, query, fragment or user
// info; a host of DNS labels (letters, digits, hyphens) or an IPv6
// literal in brackets; no percent-encoding, no trailing dot, no empty
// label. Anything else is not an origin, and is never allowed.
func parseOrigin(s string, pattern bool) (origin, error) {
	var o origin
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return o, fmt.Errorf("origin %q: want scheme://host[:port]", s)
	}
	for i, r := range scheme {
		if !(isAlpha(r) || i > 0 && (isDigit(r) || r == '+' || r == '-' || r == '.')) {
			return o, fmt.Errorf("origin %q: bad scheme", s)
		}
	}
	o.scheme = strings.ToLower(scheme)
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return o, fmt.Errorf("origin %q: unclosed IPv6 literal", s)
		}
		host, port = rest[:end+1], rest[end+1:]
		for _, r := range host[1:end] {
			if !(isDigit(r) || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' || r == ':' || r == '.') {
				return o, fmt.Errorf("origin %q: bad IPv6 literal", s)
			}
		}
		if end == 1 {
			return o, fmt.Errorf("origin %q: empty IPv6 literal", s)
		}
		if port != "" && port[0] != ':' {
			return o, fmt.Errorf("origin %q: want scheme://host[:port]", s)
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(rest, ":") {
			return o, fmt.Errorf("origin %q: empty port", s)
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
		if port == "" {
			return o, fmt.Errorf("origin %q: empty port", s)
		}
	}
	o.host = strings.ToLower(host)
	if !strings.HasPrefix(o.host, "[") {
		labels := o.host
		if pattern {
			labels = strings.TrimPrefix(labels, "*.")
		}
		if labels == "" {
			return o, fmt.Errorf("origin %q: no host", s)
		}
		for _, l := range strings.Split(labels, ".") {
			if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
				return o, fmt.Errorf("origin %q: bad host", s)
			}
			for _, r := range l {
				if !(isAlpha(r) || isDigit(r) || r == '-') {
					return o, fmt.Errorf("origin %q: bad host", s)
				}
			}
		}
	}
	switch {
	case port != "":
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
			return o, fmt.Errorf("origin %q: bad port", s)
		}
		o.port = n
	case o.scheme == "https" || o.scheme == "wss":
		o.port = 443
	case o.scheme == "http" || o.scheme == "ws":
		o.port = 80
	}
	return o, nil
}

func isAlpha(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// origins is the allow-list of browser origins for the WebSocket upgrade.
// A nil *origins allows every origin.
type origins struct {
	exact    map[origin]bool
	suffixes []origin // host holds ".example.com" for a pattern "*.example.com"
}

// newOrigins parses the allow-list. Entries are exact origins
// ("https://odds.example.com", "http://localhost:3000") or patterns whose
// host starts with "*." ("https://*.example.com"), which match any host
// ending in ".example.com" (one or more labels before it) with the same
// scheme and port, but not example.com itself. "null" and "*" are refused:
// every sandboxed page and every file:// page sends "null", and "*" is what
// an empty list already means. An empty list allows every origin (nil).
func newOrigins(list []string) (*origins, error) {
	if len(list) == 0 {
		return nil, nil
	}
	o := &origins{exact: make(map[origin]bool)}
	for _, s := range list {
		s = strings.TrimSpace(s)
		switch s {
		case "":
			continue
		case "null":
			return nil, fmt.Errorf("gateway: allowed origin \"null\": sandboxed and file:// pages on any site send it, so it cannot be allowed")
		case "*":
			return nil, fmt.Errorf("gateway: allowed origin \"*\": leave the list empty to allow every origin")
		}
		p, err := parseOrigin(s, true)
		if err != nil {
			return nil, fmt.Errorf("gateway: allowed origins: %w", err)
		}
		if strings.HasPrefix(p.host, "*.") {
			p.host = p.host[1:]
			o.suffixes = append(o.suffixes, p)
		} else {
			o.exact[p] = true
		}
	}
	if len(o.exact) == 0 && len(o.suffixes) == 0 {
		return nil, nil
	}
	return o, nil
}

// allow reports whether a request with this Origin header value may
// upgrade. A request without the header, or with it empty (a client that is
// not a browser: browsers always send a value) is allowed; "null" and
// anything that is not an origin are not.
func (o *origins) allow(header []byte) bool {
	if o == nil || len(header) == 0 {
		return true
	}
	got, err := parseOrigin(string(header), false)
	if err != nil {
		return false
	}
	if o.exact[got] {
		return true
	}
	for _, p := range o.suffixes {
		if p.scheme == got.scheme && p.port == got.port &&
			len(got.host) > len(p.host) && strings.HasSuffix(got.host, p.host) {
			return true
		}
	}
	return false
}
