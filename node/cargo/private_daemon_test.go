package cargo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths and a client that trusts the certificate.
func selfSigned(t *testing.T) (cert, key string, client *http.Client) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func getWith(t *testing.T, c *http.Client, url, token string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// TestDaemonPrivateOverTLS runs the real daemon with --auth-required and
// --tls-cert/--tls-key: the API and the Cargo index answer over HTTPS,
// anonymous reads get 401 while /health stays open, config.json names
// HTTPS endpoints and says auth-required, and stock cargo, trusting the
// certificate, publishes and builds a dependent with the token.
func TestDaemonPrivateOverTLS(t *testing.T) {
	cargo, bin := requireCargoDaemon(t, "--auth-required", "--tls-cert", "--tls-key")
	cert, key, c := selfSigned(t)
	d := startDaemon(t, bin, "--auth-required", "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(d.url, "https://") {
		t.Fatalf("the daemon announced %s, want an https:// API", d.url)
	}
	if st, _, b := getWith(t, c, d.url+"/health", ""); st != 200 {
		t.Fatalf("anonymous /health over TLS: %d %s", st, b)
	}
	for _, p := range []string{"/crates", "/index/config.json"} {
		if st, h, _ := getWith(t, c, d.url+p, ""); st != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("anonymous GET %s on the private daemon: %d, WWW-Authenticate %q", p, st, h.Get("WWW-Authenticate"))
		}
	}
	st, _, b := getWith(t, c, d.url+"/index/config.json", d.token)
	var cfg IndexConfig
	if err := json.Unmarshal(b, &cfg); st != 200 || err != nil || !cfg.AuthRequired || !strings.HasPrefix(cfg.DL, "https://") {
		t.Fatalf("config.json with the token: %d %s; want auth-required and https endpoints", st, b)
	}

	index := "sparse+" + d.url + "/index/"
	env := func(token string) *cargoEnv {
		e := newCargoEnv(t, cargo, index, token)
		e.env = append(e.env, "CARGO_HTTP_CAINFO="+cert, "CARGO_REGISTRIES_WCR_CREDENTIAL_PROVIDER=cargo:token")
		return e
	}
	env(d.token).mustRun(fixture(t, "wcr-leaf", "0.1.0"), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify")
	if got := strings.TrimSpace(env(d.token).mustRun(fixture(t, "wcr-app", ""), "run", "--quiet")); got != "wcr-leaf 0.1.0 says 2 + 3 = 5" {
		t.Fatalf("wcr-app built against the private TLS daemon printed %q", got)
	}
	if out, ok := env("").run(fixture(t, "wcr-app", ""), "build"); ok || !strings.Contains(out, "no token found") {
		t.Fatalf("cargo without a token against the private daemon:\n%s", out)
	}
}

// TestDaemonConnectionCap: with --max-connections 2, a third connection
// is not served while two are open, and is served once one closes.
func TestDaemonConnectionCap(t *testing.T) {
	bin, help := buildDaemon(t)
	if !strings.Contains(help, "--max-connections") {
		t.Fatalf("the daemon has no --max-connections flag")
	}
	d := startDaemon(t, bin, "--max-connections", "2")
	host := strings.TrimPrefix(d.url, "http://")
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A served connection: it has answered one request and stays open.
		io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
		buf := make([]byte, 12)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/1.1 200" {
			t.Fatalf("connection %d: %q %v", i, buf, err)
		}
		held = append(held, c)
	}
	done := make(chan int, 1)
	go func() {
		res, err := (&http.Client{Timeout: 60 * time.Second}).Get(d.url + "/health")
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	select {
	case st := <-done:
		t.Fatalf("a third connection was served (%d) while two were open", st)
	case <-time.After(time.Second):
	}
	held[0].Close()
	select {
	case st := <-done:
		if st != 200 {
			t.Fatalf("the third connection, once one closed: %d", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the third connection was not served after one of the two closed")
	}
}
