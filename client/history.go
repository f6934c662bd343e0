package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"

	"github.com/feedgate/feedgate/codec"
)

// HistoryOptions select a page of a channel's history.
type HistoryOptions struct {
	// Limit is the most messages in the page: 1 to 1000 (0: the edge's
	// default, 100).
	Limit int
	// Before is the Next of an earlier page: only older messages. Empty:
	// from the newest.
	Before string
}

// HistoryPage is one page of a channel's history, newest first.
type HistoryPage struct {
	// Messages, newest first; each Pos is a resume token to continue after
	// that message.
	Messages []Message
	// Next, when not empty, is the Before of the next (older) page. Cursors
	// are meaningful only on the edge that issued them (docs/protocol.md
	// §16.2).
	Next string
}

// History fetches a page of the channel's history from the edge the
// session is connected to (or last tried), with the session's current
// credentials. History is per edge: another edge may hold other messages,
// and a Next cursor means nothing to another edge.
func (s *Session) History(ctx context.Context, channel string, o HistoryOptions) (HistoryPage, error) {
	s.mu.Lock()
	url, creds := s.url, s.creds
	s.mu.Unlock()
	if creds == (Credentials{}) {
		creds = Credentials{APIKey: s.o.APIKey, Token: s.o.Token}
	}
	return fetchHistory(ctx, s.o.HTTPClient, url, creds.bearer(), channel, o)
}

// History fetches a page of the channel's history from the edge c is
// connected to.
func (c *Client) History(ctx context.Context, channel string, o HistoryOptions) (HistoryPage, error) {
	return fetchHistory(ctx, http.DefaultClient, c.url, c.creds.bearer(), channel, o)
}

// bearer is the credential an HTTP request carries as Authorization:
// Bearer (protocol §16): the API key, or else the token.
func (cr Credentials) bearer() string {
	if cr.APIKey != "" {
		return cr.APIKey
	}
	return cr.Token
}

// fetchHistory is GET /v1/channels/{channel}/history on the edge whose
// WebSocket base URL is wsURL.
func fetchHistory(ctx context.Context, hc *http.Client, wsURL, bearer, channel string, o HistoryOptions) (HistoryPage, error) {
	if err := codec.ValidateChannel(channel); err != nil {
		return HistoryPage{}, err
	}
	base, err := httpBase(wsURL)
	if err != nil {
		return HistoryPage{}, err
	}
	q := neturl.Values{}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Before != "" {
		q.Set("before", o.Before)
	}
	u := base + "/v1/channels/" + neturl.PathEscape(channel) + "/history"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return HistoryPage{}, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("client: history of %q: %w", channel, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return HistoryPage{}, fmt.Errorf("client: history of %q: %w", channel, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Code != 0 {
			return HistoryPage{}, fmt.Errorf("client: history of %q: %w", channel, &codec.Error{Code: codec.Code(e.Error.Code), Message: e.Error.Message})
		}
		return HistoryPage{}, fmt.Errorf("client: history of %q: HTTP %d", channel, resp.StatusCode)
	}
	var page struct {
		Messages []struct {
			ID   string          `json:"id"`
			Name string          `json:"name"`
			Data json.RawMessage `json:"data"`
			Time int64           `json:"time"`
			Pos  string          `json:"pos"`
		} `json:"messages"`
		Next string `json:"next"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return HistoryPage{}, fmt.Errorf("client: history of %q: %w", channel, err)
	}
	out := HistoryPage{Next: page.Next, Messages: make([]Message, len(page.Messages))}
	for i, m := range page.Messages {
		out.Messages[i] = Message{Message: codec.Message{Channel: channel, ID: m.ID, Name: m.Name, Data: m.Data, Time: m.Time}, Pos: m.Pos}
	}
	return out, nil
}

// httpBase turns an edge's WebSocket base URL into its HTTP one.
func httpBase(wsURL string) (string, error) {
	switch {
	case strings.HasPrefix(wsURL, "ws://"):
		return "http://" + strings.TrimPrefix(wsURL, "ws://"), nil
	case strings.HasPrefix(wsURL, "wss://"):
		return "https://" + strings.TrimPrefix(wsURL, "wss://"), nil
	case strings.HasPrefix(wsURL, "http://"), strings.HasPrefix(wsURL, "https://"):
		return wsURL, nil
	}
	return "", fmt.Errorf("client: %q is not a ws:// or wss:// URL", wsURL)
}
