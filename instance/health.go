package instance

import (
	"context"
	"log/slog"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/vmm"
)

// prober runs a health check inside the guest (the init probes the
// application, as docker runs HEALTHCHECK in the container), and records
// the verdict in the instance's state. Whatever network the VM has, the
// verdict is the application's.
type prober struct {
	check HealthCheck
	vm    *vmm.VM
	dir   string
	log   *slog.Logger
}

func (p *prober) run(ctx context.Context) {
	interval := p.check.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	timeout := p.check.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	probe := guestapi.Probe{Port: p.check.Port, HTTPPath: p.check.HTTPPath, TimeoutMS: int(timeout / time.Millisecond)}
	start := time.Now()
	streak := 0
	last := HealthStarting
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
		err := p.vm.Probe(pctx, probe)
		cancel()
		if ctx.Err() != nil {
			return
		}
		inStart := time.Since(start) < p.check.StartPeriod
		var status string
		werr := UpdateState(ctx, p.dir, func(s *State) {
			if s.Health == nil {
				s.Health = &HealthState{Status: HealthStarting}
			}
			s.Health.LastCheck = time.Now().UTC()
			defer func() { status = s.Health.Status }()
			if err == nil {
				streak = 0
				s.Health.Status, s.Health.FailingStreak, s.Health.LastOutput = HealthHealthy, 0, "ok"
				return
			}
			s.Health.LastOutput = err.Error()
			if inStart {
				return // failures while the app starts do not count
			}
			streak++
			s.Health.FailingStreak = streak
			if streak >= max(p.check.Retries, 1) {
				s.Health.Status = HealthUnhealthy
			}
		})
		if werr != nil {
			p.log.Error("state write failed", "what", "health", "err", werr)
			continue
		}
		if status != last {
			p.log.Info("health changed", "from", last, "to", status, "probe", errText(err))
			last = status
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
