package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/pipeline"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// PipelineTester runs the real testing pipeline. Its private directory
// (pipeline.Config.Dir) defaults to <data-dir>/pipeline: created with mode
// 0700, and refused at start-up when it exists owned by another user or
// open to others. The sandbox reaches the directories it needs through
// binds, so the data directory itself may stay private.
func PipelineTester(dataDir string, cfg pipeline.Config) TesterFactory {
	return func(log *slog.Logger) (Tester, error) {
		const op = "node.PipelineTester"
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return nil, registry.E(op, registry.EINVALID, "data directory", err)
		}
		if cfg.Dir == "" && (cfg.WorkDir == "" || cfg.CacheDir == "") {
			cfg.Dir = filepath.Join(abs, "pipeline")
		}
		cfg.Logger = log
		p, err := pipeline.New(cfg)
		if err != nil {
			return nil, registry.E(op, registry.KindOf(err), "the testing pipeline cannot start (run the node with --pipeline=false to go without it)", err)
		}
		log.Info("testing pipeline ready", "dir", cfg.Dir, "work", cfg.WorkDir, "cache", cfg.CacheDir)
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
