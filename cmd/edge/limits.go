package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/feedgate/feedgate/gateway"
)

// limitFlagSet holds the limit flags as given, until they are parsed.
type limitFlagSet struct {
	publish, publishConn, attach, attachConn, origins string
}

// limitFlags registers the flags of limits, origins and TLS.
func limitFlags(fs *flag.FlagSet, ev *environ, o *options) *limitFlagSet {
	lf := &limitFlagSet{}
	rate := func(p *string, name, env, def, usage string) {
		fs.StringVar(p, name, ev.str(env, ""), usage+"; RATE[:BURST] per second, or off (default "+def+") (env "+env+")")
	}
	rate(&lf.publish, "publish-limit", "EDGE_PUBLISH_LIMIT", "20000:40000", "messages one API key or token subject may publish on this edge, WebSocket and HTTP together")
	rate(&lf.publishConn, "publish-limit-conn", "EDGE_PUBLISH_LIMIT_CONN", "10000:20000", "messages one connection may publish")
	rate(&lf.attach, "attach-limit", "EDGE_ATTACH_LIMIT", "1000:20000", "attaches of one API key or token subject on this edge")
	rate(&lf.attachConn, "attach-limit-conn", "EDGE_ATTACH_LIMIT_CONN", "100:512", "attaches of one connection")
	fs.IntVar(&o.limits.ConnsPerKey, "max-conns-per-key", ev.int("EDGE_MAX_CONNS_PER_KEY", 0), "connections one API key or token subject may hold on this edge; 0: 1000, -1: no cap (env EDGE_MAX_CONNS_PER_KEY)")
	fs.IntVar(&o.limits.MaxConnections, "max-conns", ev.int("EDGE_MAX_CONNS", 0), "connections this edge accepts; 0: no cap (env EDGE_MAX_CONNS)")
	fs.StringVar(&lf.origins, "allowed-origins", ev.str("EDGE_ALLOWED_ORIGINS", ""), "comma-separated browser origins that may open WebSocket connections, exact (https://odds.example.com) or https://*.example.com; empty: any (env EDGE_ALLOWED_ORIGINS)")
	fs.StringVar(&o.tlsCert, "tls-cert", ev.str("EDGE_TLS_CERT", ""), "serve TLS with this PEM certificate chain, re-read when it changes and on SIGHUP (env EDGE_TLS_CERT)")
	fs.StringVar(&o.tlsKey, "tls-key", ev.str("EDGE_TLS_KEY", ""), "the PEM private key of -tls-cert (env EDGE_TLS_KEY)")
	return lf
}

// finish parses what limitFlags collected into o.
func (lf *limitFlagSet) finish(o *options) error {
	var errs []error
	for _, r := range []struct {
		name, val string
		dst       *gateway.Rate
	}{
		{"-publish-limit", lf.publish, &o.limits.PublishPerKey},
		{"-publish-limit-conn", lf.publishConn, &o.limits.PublishPerConn},
		{"-attach-limit", lf.attach, &o.limits.AttachPerKey},
		{"-attach-limit-conn", lf.attachConn, &o.limits.AttachPerConn},
	} {
		v, err := gateway.ParseRate(r.val)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
		}
		*r.dst = v
	}
	o.allowedOrigins = nil
	for _, s := range strings.Split(lf.origins, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.allowedOrigins = append(o.allowedOrigins, s)
		}
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		errs = append(errs, errors.New("-tls-cert and -tls-key go together"))
	}
	return errors.Join(errs...)
}

// newCertReloader loads the TLS certificate if one is configured (nil
// otherwise), and reloads it on SIGHUP until ctx ends.
func newCertReloader(ctx context.Context, o options, log *slog.Logger) (*gateway.CertReloader, error) {
	if o.tlsCert == "" {
		return nil, nil
	}
	r, err := gateway.NewCertReloader(gateway.CertConfig{CertFile: o.tlsCert, KeyFile: o.tlsKey, Logger: log})
	if err != nil {
		return nil, err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := r.Reload(); err != nil {
					log.Error("SIGHUP: TLS certificate reload failed; serving the previous one", "err", err)
				}
			}
		}
	}()
	return r, nil
}
