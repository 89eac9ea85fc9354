package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/scrypt"
	"golang.org/x/term"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Developer keys live in <config dir>/wasm-crates-registry/keys/<name>.key
// (0600, directory 0700): JSON with the key's peer ID and either its seed
// in hex or, with a passphrase, the seed sealed with AES-256-GCM under a
// key derived by scrypt.

type keyFile struct {
	PeerID string `json:"peer_id"`
	Seed   string `json:"seed,omitempty"` // hex, when not sealed
	// Sealed seed: scrypt(passphrase, Salt, N, 8, 1) → AES-256-GCM.
	Salt   string `json:"salt,omitempty"`
	N      int    `json:"n,omitempty"`
	Nonce  string `json:"nonce,omitempty"`
	Sealed string `json:"sealed,omitempty"`
}

const scryptN = 1 << 15

// keyRequest is a key registration as the node reports it.
type keyRequest struct {
	Key    string   `json:"key"`
	Name   string   `json:"name"`
	Roles  []string `json:"roles"`
	Person string   `json:"person"`
	State  string   `json:"state"`
	Record string   `json:"record"`
}

func keyDir(c *cli.Context) (string, error) {
	if d := globalString(c, "key-dir"); d != "" {
		return d, nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory for keys (set --key-dir or REGISTRY_KEY_DIR): %v", err)
	}
	return filepath.Join(cfg, "wasm-crates-registry", "keys"), nil
}

func keyPath(c *cli.Context, name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") || len(name) > 64 {
		return "", usagef("key name %q: use letters, digits, '-' or '_'", name)
	}
	d, err := keyDir(c)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, name+".key"), nil
}

// passphrase reads the passphrase: from REGISTRY_KEY_PASSPHRASE, or
// --passphrase-file, or the terminal. ask is false when none is wanted.
func passphrase(c *cli.Context, confirm bool) (string, error) {
	if p, ok := os.LookupEnv("REGISTRY_KEY_PASSPHRASE"); ok {
		return p, nil
	}
	if f := c.String("passphrase-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("cannot read the passphrase file: %v", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", errors.New("the key is sealed with a passphrase: set REGISTRY_KEY_PASSPHRASE or --passphrase-file")
	}
	fmt.Fprint(os.Stderr, "passphrase: ")
	p, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	if confirm {
		fmt.Fprint(os.Stderr, "again: ")
		q, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		if string(p) != string(q) {
			return "", errors.New("the passphrases differ")
		}
	}
	return string(p), nil
}

func sealKey(seed []byte, pass string) (*keyFile, error) {
	salt := make([]byte, 16)
	nonce := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	gcm, err := keyCipher(pass, salt, scryptN)
	if err != nil {
		return nil, err
	}
	return &keyFile{Salt: hex.EncodeToString(salt), N: scryptN, Nonce: hex.EncodeToString(nonce),
		Sealed: hex.EncodeToString(gcm.Seal(nil, nonce, seed, nil))}, nil
}

func keyCipher(pass string, salt []byte, n int) (cipher.AEAD, error) {
	k, err := scrypt.Key([]byte(pass), salt, n, 8, 1, 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// loadKey reads the developer key name.
func loadKey(c *cli.Context, name string) (registry.PrivateKey, error) {
	p, err := keyPath(c, name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no developer key %q (looked for %s); make one with `wasm-crates-registry-cli keys generate --name %s`", name, p, name)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the key %s: %v", p, err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("%s is not a key file: %v", p, err)
	}
	var seed []byte
	if kf.Sealed != "" {
		pass, err := passphrase(c, false)
		if err != nil {
			return nil, err
		}
		salt, e1 := hex.DecodeString(kf.Salt)
		nonce, e2 := hex.DecodeString(kf.Nonce)
		sealed, e3 := hex.DecodeString(kf.Sealed)
		if e1 != nil || e2 != nil || e3 != nil || kf.N < 1<<10 || kf.N > 1<<22 {
			return nil, fmt.Errorf("%s is damaged", p)
		}
		gcm, err := keyCipher(pass, salt, kf.N)
		if err != nil {
			return nil, err
		}
		if seed, err = gcm.Open(nil, nonce, sealed, nil); err != nil {
			return nil, fmt.Errorf("the passphrase does not open %s", p)
		}
	} else if seed, err = hex.DecodeString(kf.Seed); err != nil {
		return nil, fmt.Errorf("%s is damaged", p)
	}
	k, err := registry.KeyFromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("%s is damaged: %v", p, err)
	}
	if k.Public().PeerID() != kf.PeerID {
		return nil, fmt.Errorf("%s is damaged: its seed is not the key %s", p, kf.PeerID)
	}
	return k, nil
}

// devKey returns the developer key the command should sign with (--key),
// or nil when the node signs.
func devKey(e *env) (registry.PrivateKey, error) {
	name := globalString(e.c, "key")
	if name == "" {
		return nil, nil
	}
	return loadKey(e.c, name)
}

// signAndPost signs a yank or owners record with the developer key and
// sends it to the node, which checks the key's registration and
// ownership.
func signAndPost(e *env, k registry.PrivateKey, kind registry.Kind, subject string, body any) error {
	rec, err := registry.Sign(k, kind, subject, body, time.Now())
	if err != nil {
		return err
	}
	var raw []byte
	if err := e.cl.do(e.ctx, http.MethodPost, "/records/signed", bytes.NewReader(rec.Bytes()), "application/cbor", &raw); err != nil {
		return err
	}
	if e.json {
		return printJSON(raw)
	}
	fmt.Printf("%s %s signed by %s (record %s)\n", kind, subject, k.Public().PeerID(), rec.ID())
	return nil
}

func keysCmd() *cli.Command {
	keyFlag := &cli.StringFlag{Name: "name", Value: "default", Usage: "which of your keys"}
	return &cli.Command{
		Name:  "keys",
		Usage: "your developer keys: make one, show it, have a node register it; admins approve and revoke",
		Subcommands: []*cli.Command{
			{
				Name:  "generate",
				Usage: "make an ed25519 developer key, stored 0600 in your configuration directory",
				Flags: []cli.Flag{keyFlag,
					&cli.BoolFlag{Name: "passphrase", Usage: "seal the key with a passphrase (asked for, or REGISTRY_KEY_PASSPHRASE, or --passphrase-file)"},
					&cli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase from this file"}},
				Action: func(c *cli.Context) error {
					p, err := keyPath(c, c.String("name"))
					if err != nil {
						return err
					}
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("a key named %q exists already (%s); it is never overwritten", c.String("name"), p)
					}
					k, err := registry.GenerateKey(nil)
					if err != nil {
						return err
					}
					kf := &keyFile{Seed: hex.EncodeToString(k.Seed())}
					if c.Bool("passphrase") || c.String("passphrase-file") != "" {
						pass, err := passphrase(c, true)
						if err != nil {
							return err
						}
						if kf, err = sealKey(k.Seed(), pass); err != nil {
							return err
						}
					}
					kf.PeerID = k.Public().PeerID()
					b, _ := json.MarshalIndent(kf, "", "  ")
					if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
						return fmt.Errorf("cannot create %s: %v", filepath.Dir(p), err)
					}
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
					if err != nil {
						return fmt.Errorf("cannot create %s: %v", p, err)
					}
					if _, err := f.Write(append(b, '\n')); err != nil {
						f.Close()
						return err
					}
					if err := f.Close(); err != nil {
						return err
					}
					fmt.Fprintf(os.Stderr, "key %q saved to %s\n", c.String("name"), p)
					fmt.Println(k.Public().PeerID())
					return nil
				},
			},
			{
				Name:  "show",
				Usage: "print a key's peer ID and hex public key (what an operator puts in PUBLIC_KEY)",
				Flags: []cli.Flag{keyFlag, &cli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase from this file"}},
				Action: func(c *cli.Context) error {
					k, err := loadKey(c, c.String("name"))
					if err != nil {
						return err
					}
					fmt.Printf("peer id  %s\nhex      %s\n", k.Public().PeerID(), hex.EncodeToString(k.Public().Ed25519()))
					return nil
				},
			},
			{
				Name:  "register",
				Usage: "ask the node to register your key (an admin approves it with `keys approve`)",
				Flags: []cli.Flag{keyFlag, &cli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase from this file"},
					&cli.StringFlag{Name: "label", Usage: "a name for the key on the node (default: the key's name)"},
					&cli.StringSliceFlag{Name: "role", Usage: "publisher, reviewer or tester (repeatable; default publisher)"},
					&cli.StringSliceFlag{Name: "crate", Usage: "limit the roles to crates matching a name or a prefix* (repeatable)"}},
				Action: action(func(e *env) error {
					k, err := loadKey(e.c, e.c.String("name"))
					if err != nil {
						return err
					}
					var h struct {
						PeerID string `json:"peer_id"`
					}
					if err := e.cl.getJSON(e.ctx, "/health", &h); err != nil {
						return err
					}
					label := e.c.String("label")
					if label == "" {
						label = e.c.String("name")
					}
					proof := k.Sign(registry.KeyProofMessage(h.PeerID, k.Public().PeerID(), label))
					req := map[string]any{"key": k.Public().PeerID(), "name": label, "roles": e.c.StringSlice("role"), "crates": e.c.StringSlice("crate"),
						"proof": base64.StdEncoding.EncodeToString(proof)}
					var kr keyRequest
					if done, err := e.send(http.MethodPost, "/keys", req, &kr); done || err != nil {
						return err
					}
					fmt.Printf("key %s (%s) is %s on node %s; an admin approves it with `wasm-crates-registry-cli keys approve %s`\n", kr.Key, kr.Name, kr.State, h.PeerID, kr.Key)
					return nil
				}),
			},
			{
				Name:      "list",
				Usage:     "list key registrations (all for an admin token, yours otherwise)",
				ArgsUsage: " ",
				Action: action(func(e *env) error {
					var l struct {
						Keys []keyRequest `json:"keys"`
					}
					if done, err := e.get("/keys", &l); done || err != nil {
						return err
					}
					t := newTable()
					t.row("KEY", "NAME", "PERSON", "ROLES", "STATE")
					for _, k := range l.Keys {
						t.row(k.Key, k.Name, k.Person, strings.Join(k.Roles, ","), k.State)
					}
					return t.flush()
				}),
			},
			keyAdminCmd("approve", "register a requested key: the node signs a key record with the roles asked for (admin token)", http.MethodPut),
			keyAdminCmd("revoke", "revoke a developer key: the node signs a key record withdrawing its roles (admin token)", http.MethodDelete),
		},
	}
}

func keyAdminCmd(name, usage, method string) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: "KEY",
		Action: action(func(e *env) error {
			key, err := oneArg(e.c, "key (peer ID)")
			if err != nil {
				return err
			}
			var kr keyRequest
			if done, err := e.send(method, "/keys/"+url.PathEscape(key), nil, &kr); done || err != nil {
				return err
			}
			fmt.Printf("key %s (%s) is %s; record %s\n", kr.Key, kr.Name, kr.State, kr.Record)
			return nil
		}),
	}
}
