// Command kubia is the demo app of "Kubernetes in Action" (luksa/kubia),
// ported from its Node.js app.js: an HTTP server on :8080 that answers every
// request with the name of the host, i.e. the pod, that served it.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	fmt.Println("Kubia server starting...")

	srv := &http.Server{
		Addr:              ":8080",
		Handler:           http.HandlerFunc(handle),
		ReadHeaderTimeout: 10 * time.Second,
	}

	// Unlike the Node original, stop promptly on SIGTERM: as PID 1 of its
	// container the process would otherwise make every pod deletion wait
	// for the grace period.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A timeout only means some requests were cut off; we exit anyway.
		_ = srv.Shutdown(shutdownCtx)
	}()

	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "kubia: serve on %s: %v\n", srv.Addr, err)
		os.Exit(1)
	}
	// ListenAndServe returns as soon as Shutdown starts; let in-flight
	// requests finish before exiting.
	<-drained
}

// handle logs the client and answers with the hostname, looked up per
// request as the original does.
func handle(w http.ResponseWriter, r *http.Request) {
	// The original logs only the address, not the port.
	addr := r.RemoteAddr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	fmt.Println("Received request from " + addr)

	hostname, err := os.Hostname()
	if err != nil {
		http.Error(w, fmt.Sprintf("get hostname: %v", err), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "You've hit %s\n", hostname)
}
