package wes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"
)

// Fetcher downloads workflows named by http(s) workflow URLs, with a size
// limit and a timeout. Unless AllowPrivate is set it connects only to global
// unicast addresses (see publicAddr), checked on
// the address actually dialled, so redirects and DNS tricks cannot reach
// services inside the cluster's network.
type Fetcher struct {
	client *http.Client
}

// NewFetcher returns a Fetcher with the given overall timeout.
func NewFetcher(timeout time.Duration, allowPrivate bool) *Fetcher {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		dialer.Control = refusePrivate
	}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &Fetcher{client: &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return errors.New("redirect to a non-http scheme")
			}
			return nil
		},
	}}
}

var errPrivateAddress = errors.New("address is not public")

// refusePrivate is the dialer's check of the address it is about to
// connect to (after DNS, on every redirect): only public addresses pass.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !publicAddr(ap.Addr()) {
		return errPrivateAddress
	}
	return nil
}

// fetchedName is the file name a fetched workflow gets in work/: the last
// segment of the URL's path, or "workflow" when that is not a plain name.
func fetchedName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "workflow"
	}
	name := path.Base(u.Path)
	if _, err := CheckAttachmentPath(name); err != nil || name == "/" {
		return "workflow"
	}
	return name
}

// Fetch downloads raw into dir under fetchedName(raw) and returns that name.
// Problems with the URL or what it serves are an *InvalidError.
func (f *Fetcher) Fetch(ctx context.Context, raw, dir string, limit int64) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		return "", Invalid(FieldURL, "is not a valid http(s) URL")
	}
	name := fetchedName(raw)
	u.Fragment = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", Invalid(FieldURL, "is not a valid http(s) URL")
	}
	req.Header.Set("User-Agent", "wesgate")
	resp, err := f.client.Do(req)
	if err != nil {
		if errors.Is(err, errPrivateAddress) {
			return "", Invalid(FieldURL, "points to an address this server does not fetch from")
		}
		return "", Invalid(FieldURL, "could not be fetched (connection failed or timed out)")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", Invalid(FieldURL, fmt.Sprintf("could not be fetched: the server answered %d", resp.StatusCode))
	}
	if resp.ContentLength > limit {
		return "", Invalid(FieldURL, fmt.Sprintf("is larger than %d bytes", limit))
	}
	dst := filepath.Join(dir, name)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, os.ErrExist) {
		return "", Invalid(FieldURL, fmt.Sprintf("the fetched workflow %q clashes with an attachment", name))
	}
	if err != nil {
		return "", fmt.Errorf("fetch workflow: %w", err)
	}
	n, err := io.Copy(out, io.LimitReader(resp.Body, limit+1))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	switch {
	case n > limit:
		return "", Invalid(FieldURL, fmt.Sprintf("is larger than %d bytes", limit))
	case err != nil:
		return "", Invalid(FieldURL, "could not be fetched (the transfer broke off)")
	}
	return name, nil
}
