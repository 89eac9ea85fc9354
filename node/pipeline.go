package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/pipeline"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// PipelineTester runs the real testing pipeline. The sandbox user must be
// able to reach the pipeline's directories, which a private data directory
// (mode 0700, or under /root) does not allow, so by default they live in
// the system's temporary directory, in a folder named after the data
// directory: <tmp>/wcr-pipeline-<hash>/{work,cache}. cfg.WorkDir and
// cfg.CacheDir override that.
func PipelineTester(dataDir string, cfg pipeline.Config) TesterFactory {
	return func(log *slog.Logger) (Tester, error) {
		const op = "node.PipelineTester"
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return nil, registry.E(op, registry.EINVALID, "data directory", err)
		}
		sum := sha256.Sum256([]byte(abs))
		base := filepath.Join(os.TempDir(), "wcr-pipeline-"+hex.EncodeToString(sum[:6]))
		if cfg.WorkDir == "" {
			cfg.WorkDir = filepath.Join(base, "work")
		}
		if cfg.CacheDir == "" {
			cfg.CacheDir = filepath.Join(base, "cache")
		}
		for _, d := range []string{filepath.Dir(cfg.WorkDir), filepath.Dir(cfg.CacheDir)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, registry.E(op, registry.EINTERNAL, "cannot create "+d, err)
			}
		}
		cfg.Logger = log
		p, err := pipeline.New(cfg)
		if err != nil {
			return nil, registry.E(op, registry.KindOf(err), "the testing pipeline cannot start (run the node with --pipeline=false to go without it)", err)
		}
		log.Info("testing pipeline ready", "work", cfg.WorkDir, "cache", cfg.CacheDir)
		return &pipelineTester{p: p}, nil
	}
}

type pipelineTester struct{ p *pipeline.Pipeline }

var _ Tester = (*pipelineTester)(nil)

func (t *pipelineTester) Test(ctx context.Context, job TestJob, progress func(store.JobEvent)) (*registry.ReportBody, error) {
	pj := pipeline.Job{Release: job.Release, Body: job.Body, Crate: job.Crate, Local: job.Local}
	return t.p.Run(ctx, pj, func(ev pipeline.Event) {
		msg := ev.Message
		if ev.Elapsed > 0 {
			el := ev.Elapsed.Round(time.Millisecond).String()
			if msg == "" {
				msg = el
			} else {
				msg = fmt.Sprintf("%s (%s)", msg, el)
			}
		}
		progress(store.JobEvent{Stage: ev.Stage, Target: ev.Target, State: ev.State, Message: msg})
	})
}

// PipelineStatus is what health shows of the pipeline.
type PipelineStatus struct {
	Wazero     string                  `json:"wazero"`
	Targets    []pipeline.TargetStatus `json:"targets"`
	Toolchains []pipeline.Toolchain    `json:"toolchains"`
}

func (t *pipelineTester) Toolchains() any {
	return PipelineStatus{Wazero: t.p.WazeroVersion(), Targets: t.p.Targets(), Toolchains: t.p.Toolchains()}
}

func (t *pipelineTester) Close() error { return t.p.Close() }
