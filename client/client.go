package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/codec"
)

// Options configure Dial. The zero value connects in JSON without credentials.
type Options struct {
	Format codec.Format
	// APIKey ("id:secret") authenticates a publisher.
	APIKey string
	// Token is a capability token, sent as the token query parameter
	// (docs/protocol.md §1.1). Edges of protocol v1 accept and ignore it.
	Token string
	// Buffer is the capacity of the Messages channel (default 4096). For a
	// Session it is the default per-subscription buffer.
	Buffer int
	// Dialer overrides the WebSocket dialer (e.g. to bind a source address).
	Dialer *websocket.Dialer
	// MaxFrameSize is the edge's frame limit (its -max-frame-size; default
	// 65536, the edge's default): a frame larger than that is refused here
	// with frame_too_large, not sent. (The edge would answer it with an
	// error without ref: a publish could not be told.)
	MaxFrameSize int
}

// Message is a delivered message with its position: Pos is the resume
// token to attach with to continue right after it, on any edge.
type Message struct {
	codec.Message
	Pos string
}

// ErrClosed is returned by calls on a closed connection.
var ErrClosed = errors.New("client: connection closed")

// writeTimeout bounds one socket write, as the edge bounds its own: a
// connection whose writes make no progress for this long is dead.
const writeTimeout = 10 * time.Second

// Client is one connection to an edge.
type Client struct {
	ws       *websocket.Conn
	url      string
	creds    Credentials // for History
	maxFrame int
	format   codec.Format
	msgs     chan Message
	errs     chan *codec.Error
	done     chan struct{}
	closing  chan struct{} // closed by Close: the read loop stops handing over
	closed   sync.Once
	ref      atomic.Uint64
	// frames, if set, sees every decoded frame first, on the read loop; a
	// Session uses it to route messages without blocking the reader. When it
	// returns true the frame is consumed.
	frames func(fr *codec.Frame) bool
	// deltas holds the delta bases per channel (delta.go); deltaErr, if
	// set, is told of a delta frame that did not apply (a Session resyncs
	// the channel), else the Client re-attaches the channel itself.
	deltas   deltaBases
	deltaErr func(channel string, err error)
	// lastRecv is when the last frame arrived (Unix nanoseconds): a
	// Session takes an edge for dead when it goes quiet.
	lastRecv atomic.Int64

	wmu sync.Mutex // serialises writes

	mu         sync.Mutex // guards the fields below
	pending    map[uint64]chan codec.Frame
	disconnect *codec.Error
	reconnect  bool // the disconnect frame's reconnect flag
	readErr    error
}

// Dial connects to an edge. url is the edge's base WebSocket URL, e.g.
// "ws://127.0.0.1:8080"; the path /v1/ws and the format are added.
func Dial(ctx context.Context, url string, o Options) (*Client, error) {
	return dial(ctx, url, o, nil, nil)
}

func dial(ctx context.Context, url string, o Options, frames func(*codec.Frame) bool, deltaErr func(string, error)) (*Client, error) {
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	if o.MaxFrameSize <= 0 {
		o.MaxFrameSize = 64 << 10
	}
	if frames != nil {
		o.Buffer = 1 // frames consumes the messages: Messages stays unused
	}
	d := o.Dialer
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	}
	h := http.Header{}
	if o.APIKey != "" {
		h.Set("Authorization", "Bearer "+o.APIKey)
	}
	u := fmt.Sprintf("%s/v1/ws?format=%s", url, o.Format)
	if o.Token != "" {
		u += "&token=" + neturl.QueryEscape(o.Token)
	}
	ws, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			if e := refusal(resp); e != nil {
				// The edge refused the upgrade with its JSON error
				// (protocol §1.3): say which, so that errors.As finds it.
				return nil, fmt.Errorf("client: dial %s: HTTP %d: %w", url, resp.StatusCode, e)
			}
			return nil, fmt.Errorf("client: dial %s: %w (HTTP %d)", url, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("client: dial %s: %w", url, err)
	}
	c := &Client{
		ws:       ws,
		url:      url,
		creds:    Credentials{APIKey: o.APIKey, Token: o.Token},
		maxFrame: o.MaxFrameSize,
		format:   o.Format,
		msgs:     make(chan Message, o.Buffer),
		errs:     make(chan *codec.Error, 64),
		done:     make(chan struct{}),
		closing:  make(chan struct{}),
		frames:   frames,
		deltaErr: deltaErr,
		pending:  make(map[uint64]chan codec.Frame),
	}
	c.lastRecv.Store(time.Now().UnixNano())
	go c.readLoop()
	return c, nil
}

// Messages delivers the messages of every attached channel, in arrival
// order. It is closed when the connection ends. A consumer that stops
// reading it stops the connection's reader once Options.Buffer messages
// wait: heartbeats then go unanswered and the edge drops the connection.
// A Session does not have this problem.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Errors delivers error frames that answer no request of this client
// (e.g. a frame the edge could not parse). Older ones are dropped if unread.
func (c *Client) Errors() <-chan *codec.Error { return c.errs }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Disconnect returns the reason the edge gave for ending the connection, if
// it gave one (read it after Done is closed).
func (c *Client) Disconnect() *codec.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disconnect
}

// Attach attaches a channel and waits for the edge's answer.
func (c *Client) Attach(ctx context.Context, channel string, opts codec.AttachOptions) error {
	_, err := c.AttachInfo(ctx, channel, opts)
	return err
}

// Attached is the edge's answer to an attach.
type Attached struct {
	Continuity codec.Continuity
	Pos        string // the channel's position the stream starts from
}

// AttachInfo attaches a channel and returns the edge's answer: with
// opts.Resume, whether the stream resumed exactly or continuity was lost.
func (c *Client) AttachInfo(ctx context.Context, channel string, opts codec.AttachOptions) (Attached, error) {
	return c.attachRef(ctx, channel, opts, 0)
}

// attachRef is AttachInfo with the request's ref chosen by the caller (0:
// the next one), so that a Session can recognise the answer on the read loop.
func (c *Client) attachRef(ctx context.Context, channel string, opts codec.AttachOptions, ref uint64) (Attached, error) {
	c.deltas.attaching(channel, opts)
	fr, err := c.request(ctx, &codec.Frame{Type: codec.FrameAttach, Ref: ref, Channel: channel, Options: opts})
	return Attached{Continuity: fr.Continuity, Pos: fr.Pos}, err
}

// Detach detaches a channel; no message of it follows the answer.
func (c *Client) Detach(ctx context.Context, channel string) error {
	_, err := c.request(ctx, &codec.Frame{Type: codec.FrameDetach, Channel: channel})
	return err
}

// PublishOptions are the optional fields of a publish.
type PublishOptions struct {
	ID   string // makes retries idempotent within the edge's dedup window
	Name string
}

// Publish publishes data (one JSON value) on an attached channel and waits
// for the ack; it returns the message's ID, or the nack as an *codec.Error.
func (c *Client) Publish(ctx context.Context, channel string, data []byte, o PublishOptions) (string, error) {
	fr, err := c.request(ctx, &codec.Frame{Type: codec.FramePublish, Channel: channel, Msg: codec.Message{ID: o.ID, Name: o.Name, Data: data}})
	if err != nil {
		return "", err
	}
	return fr.Msg.ID, nil
}

// SendRaw writes one WebSocket message as it is: for testing how an edge
// treats malformed input. binary selects a binary message.
func (c *Client) SendRaw(b []byte, binary bool) error {
	t := websocket.TextMessage
	if binary {
		t = websocket.BinaryMessage
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(t, b)
}

// LastReceived is when the last frame arrived from the edge.
func (c *Client) LastReceived() time.Time { return time.Unix(0, c.lastRecv.Load()) }

// Close closes the connection and waits for its reader to end. Messages
// not yet taken from Messages are dropped. Close may be called more than
// once and from any goroutine.
func (c *Client) Close() error {
	c.closed.Do(func() { close(c.closing) })
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	err := c.ws.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		err = nil // closed before: by the edge, or by an earlier Close
	}
	return err
}

// ended describes how the connection ended (after Done is closed): the
// edge's disconnect frame if it sent one, with its reconnect flag, else the
// read error (a WebSocket close code, a reset, or the local Close).
func (c *Client) ended() (d *codec.Error, reconnect bool, readErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disconnect, c.reconnect, c.readErr
}

func (c *Client) nextRef() uint64 { return c.ref.Add(1) }

func (c *Client) request(ctx context.Context, fr *codec.Frame) (codec.Frame, error) {
	reply, release, err := c.send(fr)
	if err != nil {
		return codec.Frame{}, err
	}
	defer release()
	return c.await(ctx, reply)
}

// send writes fr as a request (giving it a ref if it has none) and returns
// the channel its reply comes on; release forgets the request, once its
// reply was taken or given up.
func (c *Client) send(fr *codec.Frame) (reply chan codec.Frame, release func(), err error) {
	if fr.Ref == 0 {
		fr.Ref = c.nextRef()
	}
	reply = make(chan codec.Frame, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return nil, nil, ErrClosed
	}
	c.pending[fr.Ref] = reply
	c.mu.Unlock()
	ref := fr.Ref
	release = func() {
		c.mu.Lock()
		delete(c.pending, ref)
		c.mu.Unlock()
	}
	if err := c.write(fr); err != nil {
		release()
		select {
		case <-c.done:
			return nil, nil, ErrClosed
		case <-c.closing: // closed by us: the socket's error says no more
			return nil, nil, ErrClosed
		default:
			return nil, nil, err
		}
	}
	return reply, release, nil
}

// await waits for the reply of a request sent with send: the reply, with
// its error (nack or error frame) as an *codec.Error.
func (c *Client) await(ctx context.Context, reply chan codec.Frame) (codec.Frame, error) {
	select {
	case r := <-reply:
		if r.Err != nil {
			return r, r.Err
		}
		return r, nil
	case <-c.done:
		return codec.Frame{}, ErrClosed
	case <-ctx.Done():
		return codec.Frame{}, ctx.Err()
	}
}

func (c *Client) write(fr *codec.Frame) error {
	b, err := c.format.Encode(fr)
	if err != nil {
		return err
	}
	if len(b) > c.maxFrame {
		return codec.Errorf(codec.CodeFrameTooLarge, "the %s frame is %d bytes; the edge's limit is %d (Options.MaxFrameSize)", fr.Type, len(b), c.maxFrame)
	}
	return c.SendRaw(b, c.format.Binary())
}

func (c *Client) readLoop() {
	defer func() {
		c.mu.Lock()
		c.pending = nil
		c.mu.Unlock()
		close(c.msgs)
		close(c.done)
	}()
	for {
		_, b, err := c.ws.ReadMessage()
		c.lastRecv.Store(time.Now().UnixNano())
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		fr, err := c.format.Decode(b)
		if err != nil {
			if errors.Is(err, codec.ErrUnknownType) {
				// A frame type of a later protocol version (§2.2): skip it.
				continue
			}
			c.pushError(codec.AsError(err))
			continue
		}
		keep, derr := c.deltas.frame(c.format, &fr)
		if derr != nil {
			if c.deltaErr != nil {
				c.deltaErr(fr.Channel, derr)
			} else {
				c.resyncDelta(fr.Channel)
			}
		}
		if !keep {
			continue
		}
		if c.frames != nil && c.frames(&fr) {
			continue
		}
		switch fr.Type {
		case codec.FrameMessage:
			fr.Msg.Channel = fr.Channel
			select {
			case c.msgs <- Message{Message: fr.Msg, Pos: fr.Pos}:
			case <-c.closing:
				return
			}
		case codec.FrameHeartbeat:
			_ = c.write(&codec.Frame{Type: codec.FrameHeartbeat})
		case codec.FrameDisconnect:
			c.mu.Lock()
			c.disconnect, c.reconnect = fr.Err, fr.Reconnect
			c.mu.Unlock()
		default:
			c.mu.Lock()
			ch := c.pending[fr.Ref]
			c.mu.Unlock()
			if ch != nil && fr.Ref != 0 {
				select {
				case ch <- fr:
				default: // a second answer to one ref: not ours to block on
				}
			} else if fr.Err != nil {
				c.pushError(fr.Err)
			}
		}
	}
}

func (c *Client) pushError(e *codec.Error) {
	select {
	case c.errs <- e:
	default:
	}
}

// refusal reads the edge's JSON error from a refused upgrade's response
// (the WebSocket library keeps the start of its body), or nil.
func refusal(resp *http.Response) *codec.Error {
	if resp.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var body struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil || body.Error == nil || body.Error.Code == 0 {
		return nil
	}
	return &codec.Error{Code: codec.Code(body.Error.Code), Message: body.Error.Message}
}
