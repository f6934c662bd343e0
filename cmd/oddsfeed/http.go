package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// maxBatch is the edge's batch limit (protocol §16.1).
const maxBatch = 1000

// httpPublisher posts batches to POST /v1/channels/{channel}/messages on
// one keep-alive connection.
type httpPublisher struct {
	base, key string
	hc        *http.Client
	t         *tally
	body      bytes.Buffer
}

func newHTTPPublisher(o options, t *tally) (publisher, error) {
	base, err := httpBase(o.edge)
	if err != nil {
		return nil, err
	}
	return &httpPublisher{base: base, key: o.key, t: t, hc: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}}, nil
}

// httpBase turns the -edge URL into the HTTP base URL.
func httpBase(edge string) (string, error) {
	u, err := url.Parse(edge)
	if err != nil {
		return "", fmt.Errorf("-edge %q: %w", edge, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("-edge %q: want an http://, https://, ws:// or wss:// URL", edge)
	}
	if u.Host == "" {
		return "", fmt.Errorf("-edge %q: no host", edge)
	}
	return u.Scheme + "://" + u.Host, nil
}

func (p *httpPublisher) close() { p.hc.CloseIdleConnections() }

// run takes what is queued (at most maxBatch), groups it by channel in
// order, and publishes each channel's group as one batch.
func (p *httpPublisher) run(giveUp context.Context, q <-chan job) {
	var batch []job
	for j := range q {
		batch = append(batch[:0], j)
	more:
		for len(batch) < maxBatch {
			select {
			case j, ok := <-q:
				if !ok {
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		var order []string
		groups := map[string][]job{}
		for _, j := range batch {
			if _, ok := groups[j.u.Channel]; !ok {
				order = append(order, j.u.Channel)
			}
			groups[j.u.Channel] = append(groups[j.u.Channel], j)
		}
		for _, ch := range order {
			p.publish(giveUp, ch, groups[ch])
		}
	}
}

// wireError is an error object of the HTTP API (§16).
type wireError struct {
	Code       int    `json:"code"`
	Name       string `json:"name"`
	Message    string `json:"message"`
	RetryAfter int64  `json:"retry_after"` // milliseconds, with rate_limited
}

// publishResult is the edge's answer to a batch (§16.1), or its error body.
type publishResult struct {
	Results []struct {
		ID    string     `json:"id"`
		Error *wireError `json:"error"`
	} `json:"results"`
	Error *wireError `json:"error"`
}

// publish publishes jobs on ch until each is acked or refused for good: a
// retryable refusal, a failed request or an unreadable answer is retried
// from the first unaccepted message on, with the same ids, after the
// refusal's retry_after or else a backoff; until giveUp ends, when the rest
// is left unconfirmed.
func (p *httpPublisher) publish(giveUp context.Context, ch string, jobs []job) {
	backoff := 50 * time.Millisecond
	for len(jobs) > 0 {
		res, err := p.post(giveUp, ch, jobs)
		retry, wait := "", time.Duration(0)
		switch {
		case err != nil:
			retry = "request_failed"
		case res.Error != nil: // the whole request was refused
			c := codec.Code(res.Error.Code)
			if !c.Retryable() && c != codec.CodeGoingAway {
				p.t.refuse(c.String(), len(jobs))
				return
			}
			retry, wait = c.String(), time.Duration(res.Error.RetryAfter)*time.Millisecond
		case len(res.Results) != len(jobs):
			retry = "bad_answer"
		default:
			ok := 0
			for ok < len(res.Results) && res.Results[ok].Error == nil {
				ok++
			}
			p.t.ack(ok, payloadBytes(jobs[:ok]))
			jobs = jobs[ok:]
			if len(jobs) == 0 {
				return
			}
			// The accepted ones are a prefix; the first refusal decides.
			c := codec.Code(res.Results[ok].Error.Code)
			if !c.Retryable() {
				p.t.refuse(c.String(), 1)
				jobs = jobs[1:]
				continue
			}
			retry, wait = c.String(), time.Duration(res.Results[ok].Error.RetryAfter)*time.Millisecond
			backoff = 50 * time.Millisecond
		}
		p.t.retry(retry)
		if wait <= 0 {
			wait = backoff
			backoff = min(2*backoff, 2*time.Second)
		}
		select {
		case <-time.After(wait):
		case <-giveUp.Done():
			p.t.unconfirmed(len(jobs))
			return
		}
	}
}

func payloadBytes(jobs []job) int {
	n := 0
	for _, j := range jobs {
		n += len(j.u.Payload)
	}
	return n
}

func (p *httpPublisher) post(ctx context.Context, ch string, jobs []job) (publishResult, error) {
	var res publishResult
	b := &p.body
	b.Reset()
	b.WriteString(`{"messages":[`)
	for i, j := range jobs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":"`)
		b.WriteString(j.id) // ids are ASCII letters, digits and '-'
		b.WriteString(`","name":"`)
		b.WriteString(j.u.Kind.String())
		b.WriteString(`","data":`)
		b.Write(j.u.Payload)
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		p.base+"/v1/channels/"+strings.ReplaceAll(url.PathEscape(ch), "%3A", ":")+"/messages", bytes.NewReader(b.Bytes()))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return res, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	if res.Error == nil && res.Results == nil {
		return res, fmt.Errorf("HTTP %d: no results", resp.StatusCode)
	}
	return res, nil
}
