// Command portico-h2spec runs h2spec's server conformance tests (HTTP/2, RFC 9113 and HPACK,
// RFC 7541) against one address and exits 1 when any fails. It is Portico's own entry point
// to the h2spec library (summerwind/h2spec, MIT), whose source ../shared/tools keeps without
// its command; build.sh builds the two together with Debian's Go packages.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/summerwind/h2spec"
	"github.com/summerwind/h2spec/config"
)

func main() {
	host := flag.String("host", "127.0.0.1", "the server's host")
	port := flag.Int("port", 0, "the server's port")
	path := flag.String("path", "/", "the path each test's request goes to")
	tls := flag.Bool("tls", false, "speak TLS (ALPN h2)")
	insecure := flag.Bool("insecure", false, "accept any certificate")
	timeout := flag.Duration("timeout", 2*time.Second, "how long a test waits for the server")
	junit := flag.String("junit", "", "write a JUnit report here")
	sections := flag.String("sections", "", "comma-separated sections to run (all when empty)")
	verbose := flag.Bool("verbose", false, "print every frame")
	flag.Parse()
	if *port == 0 {
		fmt.Fprintln(os.Stderr, "portico-h2spec: -port is required")
		os.Exit(2)
	}
	c := &config.Config{
		Host:         *host,
		Port:         *port,
		Path:         *path,
		Timeout:      *timeout,
		MaxHeaderLen: 4000,
		JUnitReport:  *junit,
		TLS:          *tls,
		Insecure:     *insecure,
		Verbose:      *verbose,
		Strict:       false,
	}
	if *sections != "" {
		c.Sections = strings.Split(*sections, ",")
	}
	ok, err := h2spec.Run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "portico-h2spec:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}
