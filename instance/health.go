package instance

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// prober runs a health check against a loopback port that QEMU forwards
// to the guest port, and records the verdict in the instance's state.
type prober struct {
	check HealthCheck
	addr  string
	dir   string
}

func (p *prober) run(ctx context.Context) {
	interval := p.check.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	start := time.Now()
	streak := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := p.probe(ctx)
		if ctx.Err() != nil {
			return
		}
		inStart := time.Since(start) < p.check.StartPeriod
		_ = UpdateState(ctx, p.dir, func(s *State) {
			if s.Health == nil {
				s.Health = &HealthState{Status: HealthStarting}
			}
			s.Health.LastCheck = time.Now().UTC()
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
	}
}

// probe is one check: a TCP connect, or an HTTP GET answering 2xx or 3xx.
func (p *prober) probe(ctx context.Context) error {
	timeout := p.check.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p.check.HTTPPath == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return err
		}
		// QEMU's user network accepts on the host before the guest does;
		// a guest that refuses closes the connection at once.
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var b [1]byte
		_, rerr := c.Read(b[:])
		c.Close()
		if ne, ok := rerr.(net.Error); rerr == nil || (ok && ne.Timeout()) {
			return nil
		}
		return fmt.Errorf("connection closed by the guest: %w", rerr)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+p.check.HTTPPath, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
