package node

import (
	"bytes"
	"context"
	"encoding/json"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

const settingsKey = "settings"

func (n *Node) loadSettings() error {
	var s registry.Settings
	err := n.db.GetLocalJSON(settingsKey, &s)
	switch {
	case registry.KindOf(err) == registry.ENOTFOUND:
		s = registry.Settings{Name: n.cfg.Name, Gates: registry.DefaultGates(), AutoTest: true}
		if err := n.db.PutLocalJSON(settingsKey, s); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	n.settingsMu.Lock()
	n.settings = s
	n.settingsMu.Unlock()
	return nil
}

// Settings returns the registry's current settings.
func (n *Node) Settings() registry.Settings {
	n.settingsMu.RLock()
	defer n.settingsMu.RUnlock()
	s := n.settings
	s.Trust.Keys = append([]string(nil), s.Trust.Keys...)
	return s
}

// UpdateSettings merges a JSON object of settings into the current ones,
// validates the result and stores it. Unknown fields are an error.
func (n *Node) UpdateSettings(ctx context.Context, actor string, patch []byte) (registry.Settings, error) {
	const op = "node.UpdateSettings"
	if err := require(ctx, op, ScopeAdmin, ""); err != nil {
		return n.Settings(), err
	}
	n.settingsMu.Lock()
	locked := true
	defer func() {
		if locked {
			n.settingsMu.Unlock()
		}
	}()
	next := n.settings
	next.Trust.Keys = append([]string(nil), next.Trust.Keys...)
	next.Trust.Peers = append([]string(nil), next.Trust.Peers...)
	if err := decodeStrictJSON(patch, &next); err != nil {
		return n.settings, registry.E(op, registry.EINVALID, "settings must be a JSON object of name, description, gates, trust, auto_test", err)
	}
	if err := next.Validate(); err != nil {
		return n.settings, err
	}
	if err := n.db.PutLocalJSONAudited(settingsKey, next, store.AuditEntry{Action: "settings", Actor: actor, Detail: string(patch)}); err != nil {
		return n.settings, err
	}
	n.settings = next
	n.settingsMu.Unlock()
	locked = false
	n.trustChanged()
	return next, nil
}

func decodeStrictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return registry.Errorf("node.decodeJSON", registry.EINVALID, "trailing data after the JSON value")
	}
	return nil
}
