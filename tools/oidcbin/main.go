// Command traceless-oidc-provider is a real OpenID provider for the tests:
// zitadel's OpenID Connect library (github.com/zitadel/oidc, an OpenID
// certified implementation) with its example storage and login page,
// listening on loopback only. The tests start it themselves (see
// TRACELESS_OIDC_PROVIDER in the README), with their own users and one
// confidential web client whose redirect URIs they name.
//
//	traceless-oidc-provider -users users.json -client-id traceless -client-secret s \
//	  -redirect http://127.0.0.1:8080/api/v1/auth/oidc/test/callback
//
// It listens on -listen (127.0.0.1, a free port by default) and prints
// "issuer=<URL>" on its first line of output once it accepts connections.
// The issuer's host is -host ("localhost" by default), so that a browser
// sees the provider as another site than a server on 127.0.0.1.
//
// The users file is a JSON object of users keyed by ID, as the example
// storage reads it: {"id1": {"ID": "id1", "Username": "ann", "Password":
// "…", "Email": "ann@example.com", "EmailVerified": true}}.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	host := flag.String("host", "localhost", "host name in the issuer URL")
	users := flag.String("users", "", "JSON file of users (required)")
	clientID := flag.String("client-id", "traceless", "the web client's ID")
	clientSecret := flag.String("client-secret", "", "the web client's secret (required)")
	redirect := flag.String("redirect", "", "the web client's redirect URIs, comma-separated (required)")
	flag.Parse()
	if *users == "" || *clientSecret == "" || *redirect == "" {
		fmt.Fprintln(os.Stderr, "traceless-oidc-provider: -users, -client-secret and -redirect are required")
		os.Exit(2)
	}
	ip, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(ip).IsLoopback() {
		fmt.Fprintf(os.Stderr, "traceless-oidc-provider: -listen %q is not a loopback address\n", *listen)
		os.Exit(2)
	}
	us, err := storage.StoreFromFile(*users)
	if err != nil {
		fmt.Fprintf(os.Stderr, "traceless-oidc-provider: users: %v\n", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "traceless-oidc-provider: %v\n", err)
		os.Exit(1)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	issuer := fmt.Sprintf("http://%s:%s/", *host, port)
	storage.RegisterClients(storage.WebClient(*clientID, *clientSecret, strings.Split(*redirect, ",")...))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	router := exampleop.SetupServer(issuer, storage.NewStorage(us), logger, false)
	fmt.Printf("issuer=%s\n", issuer)
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "traceless-oidc-provider: %v\n", err)
		os.Exit(1)
	}
}
