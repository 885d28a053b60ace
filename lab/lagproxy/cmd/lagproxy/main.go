// Command lagproxy forwards TCP connections from a loopback address to
// another, adding a fixed one-way delay in each direction (package
// lab/lagproxy). lab/ctl.sh lag starts it in front of the lab's sshd:
//
//	lagproxy -listen 127.0.0.1:2223 -target 127.0.0.1:2222 -delay 25ms
//
// It stops on SIGINT or SIGTERM, closing every connection.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wesgate/wesgate/lab/lagproxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lagproxy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("lagproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:2223", "loopback `address` to listen on")
	target := fs.String("target", "127.0.0.1:2222", "loopback `address` to forward to")
	delay := fs.Duration("delay", 25*time.Millisecond, "one-way delay added in each direction")
	verbose := fs.Bool("v", false, "log every connection")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("unexpected arguments")
	}
	if *delay < 0 {
		return errors.New("-delay must not be negative")
	}
	if err := lagproxy.CheckLoopback(*target); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ln, err := lagproxy.Listen(ctx, *listen)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", ln.Addr().String(), "target", *target, "delay", delay.String())
	p := &lagproxy.Proxy{Target: *target, Delay: *delay, Log: log}
	err = p.Serve(ctx, ln)
	log.Info("stopped")
	return err
}
