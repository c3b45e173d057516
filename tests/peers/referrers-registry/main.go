// A registry that serves the OCI referrers API, for sigil's tests: go-containerregistry's
// in-memory registry with referrers support turned on (crane's `registry serve` leaves it
// off). It prints the address it listens on and exits when its stdin closes, so a test that
// dies takes it along.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(listener.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	quiet := log.New(io.Discard, "", 0)
	handler := registry.New(registry.WithReferrersSupport(true), registry.Logger(quiet))
	log.Fatal(http.Serve(listener, handler))
}
