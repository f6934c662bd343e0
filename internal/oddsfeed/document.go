package oddsfeed

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Document is the JSON document of a market's state, the payload of every
// update, field for field in the order appendDoc writes them. Decoding a
// payload into it and encoding it with encoding/json gives the payload
// back byte for byte.
type Document struct {
	EventID    string      `json:"event_id"`
	Event      string      `json:"event"`
	Sport      string      `json:"sport"`
	InPlay     bool        `json:"in_play"`
	Score      string      `json:"score"`
	MarketID   string      `json:"market_id"`
	Market     string      `json:"market"`
	Status     string      `json:"status"`
	Version    int64       `json:"version"`
	UpdatedAt  string      `json:"updated_at"`
	Selections []Selection `json:"selections"`
}

// Selection is one runner of a market. Price is decimal odds as a string
// ("1.85"). Status is "active" in an open market, "suspended" in a
// suspended one, "won" or "lost" once it is settled.
type Selection struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Price  string `json:"price"`
	Status string `json:"status"`
}

// appendDoc appends the document of market m of event e.
func appendDoc(dst []byte, sport string, e *event, m *market, now time.Time) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = appendString(dst, e.id)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, e.name)
	dst = append(dst, `,"sport":`...)
	dst = appendString(dst, sport)
	dst = append(dst, `,"in_play":true,"score":"`...)
	dst = strconv.AppendInt(dst, int64(e.score[0]), 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, int64(e.score[1]), 10)
	dst = append(dst, `","market_id":`...)
	dst = appendString(dst, m.id)
	dst = append(dst, `,"market":`...)
	dst = appendString(dst, m.name)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, statusNames[m.status]...)
	dst = append(dst, `","version":`...)
	dst = strconv.AppendInt(dst, m.version, 10)
	dst = append(dst, `,"updated_at":"`...)
	dst = now.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	dst = append(dst, `","selections":[`...)
	for k, name := range m.sel {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":"s`...)
		dst = strconv.AppendInt(dst, int64(k+1), 10)
		dst = append(dst, `","name":`...)
		dst = appendString(dst, name)
		dst = append(dst, `,"price":`...)
		dst = appendPrice(dst, m.price[k])
		switch {
		case m.status == open:
			dst = append(dst, `,"status":"active"}`...)
		case m.status == suspended:
			dst = append(dst, `,"status":"suspended"}`...)
		case k == m.winner:
			dst = append(dst, `,"status":"won"}`...)
		default:
			dst = append(dst, `,"status":"lost"}`...)
		}
	}
	return append(dst, "]}"...)
}

// appendString appends s as a JSON string, escaped as encoding/json does
// (HTML characters included), so that a decode and re-encode gives the
// same bytes.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
