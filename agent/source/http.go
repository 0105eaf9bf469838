package source

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// PollURL fetches url every period with If-None-Match (ETag) and sends an Update when the content
// changed. 304 Not Modified sends nothing. A fetch error or a non-2xx status keeps the last good set
// (sends an Update with the same Pods and Errs[url] set, only if the error changed) — an unreachable
// server must never remove running pods. A body that fails to decode likewise keeps the last good
// set and reports the error.
//
// The first Update is always sent. If the first fetch fails there is no good set yet: that Update
// has no Pods and Errs[url] says why. Each fetch is bounded by period, so that a server that hangs
// cannot stall the polling; a nil client means http.Client's defaults. PollURL returns nil when
// ctx ends.
func PollURL(ctx context.Context, client *http.Client, url, nodeName string, period time.Duration, out chan<- Update) error {
	if period <= 0 {
		return fmt.Errorf("poll manifest URL %s: period %v must be positive", url, period)
	}
	if client == nil {
		client = &http.Client{}
	}
	p := &urlPoller{client: client, url: url, nodeName: nodeName, timeout: period}
	s := sender{out: out}
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		p.poll(ctx)
		if ctx.Err() != nil {
			return nil // the fetch failed because ctx ended: that is no news for the receiver
		}
		if s.send(ctx, p.update()) != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// urlPoller holds what is known of a manifest URL: its last good content and the error, if any,
// of the last fetch.
type urlPoller struct {
	client   *http.Client
	url      string
	nodeName string
	timeout  time.Duration

	etag     string        // of lastGood; sent as If-None-Match
	lastGood []*corev1.Pod // pods of the last body that decoded
	err      error         // why the last fetch did not give a good body; nil if it did
}

// poll fetches the URL once and records the outcome.
func (p *urlPoller) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	p.err = p.fetch(ctx)
}

// fetch fetches and decodes the URL. Only a body that decodes replaces lastGood and its ETag:
// keeping the old ETag after a bad body means the server keeps sending the bad body (and the
// error stays reported) until the content is fixed, rather than answering 304 to a content that
// was never used.
func (p *urlPoller) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return fmt.Errorf("fetch manifest URL %s: %w", p.url, err)
	}
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch manifest URL %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Drain a little so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("fetch manifest URL %s: %s", p.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return fmt.Errorf("read manifest URL %s: %w", p.url, err)
	}
	if len(body) > maxManifestSize {
		return fmt.Errorf("read manifest URL %s: body larger than %d bytes", p.url, maxManifestSize)
	}
	pods, err := decodePods(body, SourceHTTP, p.url, p.nodeName)
	if err != nil {
		return err
	}
	p.lastGood = pods
	p.etag = resp.Header.Get("ETag")
	return nil
}

// update is the source's current Update: the last good pods, and the last fetch's error.
func (p *urlPoller) update() Update {
	return buildUpdate(SourceHTTP, []part{{origin: p.url, pods: p.lastGood, err: p.err}})
}
