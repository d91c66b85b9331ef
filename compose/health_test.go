package compose

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nosproject/nos/instance"
)

func TestMapTest(t *testing.T) {
	for _, tc := range []struct {
		test []string
		want *instance.HealthCheck // nil: unmappable
	}{
		{[]string{"CMD", "curl", "-f", "http://localhost:8080/healthz"}, &instance.HealthCheck{HTTPPath: "/healthz", Port: 8080}},
		{[]string{"CMD", "curl", "-fsS", "--max-time", "3", "http://127.0.0.1/"}, &instance.HealthCheck{HTTPPath: "/", Port: 80}},
		{[]string{"CMD-SHELL", "curl -f http://localhost:3000/api?x=1 || exit 1"}, &instance.HealthCheck{HTTPPath: "/api?x=1", Port: 3000}},
		{[]string{"CMD", "wget", "-q", "--spider", "http://localhost:9000/ready"}, &instance.HealthCheck{HTTPPath: "/ready", Port: 9000}},
		{[]string{"CMD-SHELL", "wget -qO- http://localhost:81 || false"}, &instance.HealthCheck{HTTPPath: "/", Port: 81}},
		{[]string{"CMD", "/usr/bin/curl", "localhost:5000/x"}, &instance.HealthCheck{HTTPPath: "/x", Port: 5000}},
		{[]string{"CMD", "redis-cli", "ping"}, &instance.HealthCheck{Port: 6379}},
		{[]string{"CMD", "redis-cli", "-p", "7000", "PING"}, &instance.HealthCheck{Port: 7000}},
		{[]string{"CMD-SHELL", "redis-cli -h 127.0.0.1 ping"}, &instance.HealthCheck{Port: 6379}},
		{[]string{"CMD-SHELL", "pg_isready -U postgres"}, &instance.HealthCheck{Port: 5432}},
		{[]string{"CMD", "mysqladmin", "ping", "-P", "3307"}, &instance.HealthCheck{Port: 3307}},
		{[]string{"CMD", "nc", "-z", "localhost", "11211"}, &instance.HealthCheck{Port: 11211}},
		// Unmappable: other programs, hosts, schemes, methods, shell.
		{[]string{"CMD", "/bin/check"}, nil},
		{[]string{"CMD", "curl", "-f", "http://example.com/"}, nil},
		{[]string{"CMD", "curl", "-f", "https://localhost/"}, nil},
		{[]string{"CMD", "curl", "-X", "POST", "http://localhost/"}, nil},
		{[]string{"CMD-SHELL", "curl -f http://localhost/ && echo ok"}, nil},
		{[]string{"CMD", "redis-cli", "get", "x"}, nil},
		{[]string{"CMD", "redis-cli", "-h", "db", "ping"}, nil},
		{[]string{"CMD-SHELL", "curl 'http://localhost/"}, nil},
		{[]string{"CMD", "curl", "http://localhost:99999/"}, nil},
		{[]string{"RUN", "x"}, nil},
	} {
		got, err := MapTest(tc.test)
		if tc.want == nil {
			if !errors.Is(err, ErrUnmappable) {
				t.Errorf("%q: got %+v, %v; want unmappable", tc.test, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.test, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%q (-want +got):\n%s", tc.test, d)
		}
	}
}
