package guest

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeMetadata is a platform's metadata service on loopback: paths to
// answers, with the headers each request must carry.
type fakeMetadata struct {
	t       *testing.T
	need    map[string]string // header → value every request needs
	answers map[string]string // "METHOD path" → body; missing is 404
	mu      sync.Mutex
	posts   []string
}

func (f *fakeMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range f.need {
		if r.Header.Get(k) != v {
			http.Error(w, "missing "+k, http.StatusBadRequest)
			return
		}
	}
	if r.Method == "POST" {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.posts = append(f.posts, r.Header.Get("Content-Type")+"|"+r.Header.Get("x-ms-agent-name")+"|"+string(b))
		f.mu.Unlock()
	}
	body, ok := f.answers[r.Method+" "+r.URL.RequestURI()]
	if !ok {
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, body)
}

func newFake(t *testing.T, need, answers map[string]string) (*fakeMetadata, metadataClient) {
	f := &fakeMetadata{t: t, need: need, answers: answers}
	s := httptest.NewServer(f)
	t.Cleanup(s.Close)
	a := serverAddr(t, s)
	return f, metadataClient{Metadata: a, Wire: a}
}

func TestAWSMetadata(t *testing.T) {
	ud := `{"env":["A=1"]}`
	f := &fakeMetadata{answers: map[string]string{
		"PUT /latest/api/token":                "tok-123",
		"GET /latest/meta-data/local-hostname": "ip-10-0-0-7.ec2.internal",
		"GET /latest/user-data":                ud,
	}}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "no ttl", 400)
			return
		}
		if r.Method == "GET" && r.Header.Get("X-aws-ec2-metadata-token") != "tok-123" {
			http.Error(w, "no token", 401)
			return
		}
		f.ServeHTTP(w, r)
	}))
	defer s.Close()
	c := metadataClient{Metadata: serverAddr(t, s)}
	m, err := c.aws(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.Hostname != "ip-10-0-0-7" || string(m.UserData) != ud {
		t.Errorf("got %+v", m)
	}
	delete(f.answers, "GET /latest/user-data")
	delete(f.answers, "GET /latest/meta-data/local-hostname")
	if m, err := c.aws(context.Background()); err != nil || m.UserData != nil || m.Hostname != "" {
		t.Errorf("no user-data (404): %+v, %v", m, err)
	}
}

func TestGCEMetadata(t *testing.T) {
	_, c := newFake(t, map[string]string{"Metadata-Flavor": "Google"}, map[string]string{
		"GET /computeMetadata/v1/instance/hostname":             "vm-1.c.proj.internal",
		"GET /computeMetadata/v1/instance/attributes/user-data": "#nos-config\n{}",
	})
	m, err := c.gce(context.Background())
	if err != nil || m.Hostname != "vm-1" || string(m.UserData) != "#nos-config\n{}" {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestAzureMetadata(t *testing.T) {
	ud := `{"args":["-addr",":9090"]}`
	_, c := newFake(t, map[string]string{"Metadata": "true"}, map[string]string{
		"GET " + azureComputePath: `{"location":"westeurope","name":"web-7","osProfile":{"computerName":"web-7"},"userData":"` + base64.StdEncoding.EncodeToString([]byte(ud)) + `"}`,
	})
	m, err := c.azure(context.Background())
	if err != nil || m.Hostname != "web-7" || string(m.UserData) != ud {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestMetadataErrors(t *testing.T) {
	calls := 0
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.URL.Path == "/forbidden" {
			http.Error(w, "no", 403)
			return
		}
		if calls < 3 {
			http.Error(w, "starting", 503)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer s.Close()
	a := serverAddr(t, s)
	b, err := fetch(context.Background(), a, httpRequest{Method: "GET", Path: "/x", Host: "h"})
	if err != nil || string(b) != "ok" || calls != 3 {
		t.Errorf("5xx then 200: %q, %v after %d calls", b, err, calls)
	}
	calls = 10
	if _, err := fetch(context.Background(), a, httpRequest{Method: "GET", Path: "/forbidden", Host: "h"}); err == nil || !strings.Contains(err.Error(), "403") || calls != 11 {
		t.Errorf("403: %v after %d calls (want no retry)", err, calls-10)
	}
	_, c := newFake(t, nil, nil)
	if _, err := fetch(context.Background(), c.Metadata, httpRequest{Method: "GET", Path: "/none", Host: "h"}); !errors.Is(err, errNotFound) {
		t.Errorf("404: %v, want errNotFound", err)
	}
}

func TestParseAzureCompute(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{`{"name":"a","userData":"!!"}`, "not base64"},
		{`[1]`, "Azure IMDS"},
		{`{"name":"a","userData":"` + base64.StdEncoding.EncodeToString(make([]byte, 70000)) + `"}`, "more than"},
	} {
		if _, err := parseAzureCompute([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%.40s: %v, want %q", tc.in, err, tc.err)
		}
	}
	m, err := parseAzureCompute([]byte(`{"name":"bad_name!"}`))
	if err != nil || m.Hostname != "" || m.UserData != nil {
		t.Errorf("an invalid name: %+v, %v", m, err)
	}
}

func FuzzParseAzureCompute(f *testing.F) {
	f.Add([]byte(`{"name":"web","userData":"e30="}`))
	f.Add([]byte(`{"name":"` + strings.Repeat("a", 70) + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseAzureCompute(b)
		if err == nil && (len(m.UserData) > 64<<10 || (m.Hostname != "" && shortHostname(m.Hostname) != m.Hostname)) {
			t.Fatalf("accepted %+v", m)
		}
	})
}

func TestShortHostname(t *testing.T) {
	for in, want := range map[string]string{
		"web-1": "web-1", "ip-10-0-0-1.ec2.internal": "ip-10-0-0-1", " vm \n": "vm", "": "", "-x": "", "a_b": "",
		strings.Repeat("a", 64): "", "héllo": "",
	} {
		if got := shortHostname(in); got != want {
			t.Errorf("shortHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

const goalStateXML = `<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="goalstate10.xsd">
  <Version>2012-11-30</Version>
  <Incarnation>3</Incarnation>
  <Machine>
    <ExpectedState>Started</ExpectedState>
    <StopRolesDeadlineHint>300000</StopRolesDeadlineHint>
  </Machine>
  <Container>
    <ContainerId>f5940043-dbed-419c-9122-d77a4ac854b7</ContainerId>
    <RoleInstanceList>
      <RoleInstance>
        <InstanceId>79247837105c4470b89352eda4b10942.vm-1</InstanceId>
        <State>Started</State>
        <Configuration>
          <HostingEnvironmentConfig>http://168.63.129.16:80/machine/?comp=config</HostingEnvironmentConfig>
        </Configuration>
      </RoleInstance>
    </RoleInstanceList>
  </Container>
</GoalState>`

func TestParseGoalState(t *testing.T) {
	g, err := parseGoalState([]byte(goalStateXML))
	want := goalState{Incarnation: "3", ContainerID: "f5940043-dbed-419c-9122-d77a4ac854b7", InstanceID: "79247837105c4470b89352eda4b10942.vm-1"}
	if err != nil || g != want {
		t.Fatalf("got %+v, %v", g, err)
	}
	for _, tc := range []struct{ in, err string }{
		{"", "no Incarnation"},
		{"<Incarnation>1</Incarnation>", "no Container"},
		{"<Incarnation>1</Incarnation><Container><ContainerId>c</ContainerId></Container>", "no RoleInstanceList"},
		{"<Incarnation>1</Incarnation><Container><ContainerId>c</ContainerId><RoleInstanceList></RoleInstanceList></Container>", "no RoleInstance"},
		{"<Incarnation>1</Incarnation><Container><ContainerId>c&lt;</ContainerId></Container>", "byte"},
		{"<Incarnation></Incarnation>", "empty"},
		{"<Incarnation>1", "no Incarnation"},
		{"<Incarnation>" + strings.Repeat("1", 300) + "</Incarnation>", "longer"},
		// an InstanceId outside the role instance is not the role's
		{"<Incarnation>1</Incarnation><InstanceId>x</InstanceId><Container><ContainerId>c</ContainerId><RoleInstanceList><RoleInstance></RoleInstance></RoleInstanceList></Container>", "no InstanceId"},
	} {
		if _, err := parseGoalState([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%.50q: %v, want %q", tc.in, err, tc.err)
		}
	}
}

// healthDoc is the report's shape, read with encoding/xml (the test may
// link it; nos-init does not).
type healthDoc struct {
	XMLName     xml.Name `xml:"Health"`
	Incarnation string   `xml:"GoalStateIncarnation"`
	Container   string   `xml:"Container>ContainerId"`
	Instance    string   `xml:"Container>RoleInstanceList>Role>InstanceId"`
	State       string   `xml:"Container>RoleInstanceList>Role>Health>State"`
}

func TestHealthReport(t *testing.T) {
	g := goalState{Incarnation: "3", ContainerID: "c-1", InstanceID: "i.vm"}
	var d healthDoc
	if err := xml.Unmarshal(healthReport(g), &d); err != nil {
		t.Fatal(err)
	}
	if d.Incarnation != "3" || d.Container != "c-1" || d.Instance != "i.vm" || d.State != "Ready" {
		t.Errorf("report reads as %+v", d)
	}
}

func FuzzParseGoalState(f *testing.F) {
	f.Add([]byte(goalStateXML))
	f.Add([]byte("<Incarnation>1</Incarnation><Container><ContainerId>c</ContainerId><RoleInstanceList><RoleInstance><InstanceId>i</InstanceId></RoleInstance></RoleInstanceList></Container>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := parseGoalState(b)
		if err != nil {
			return
		}
		// Whatever it accepts goes back into a well-formed report.
		var d healthDoc
		if err := xml.Unmarshal(healthReport(g), &d); err != nil || d.Incarnation != g.Incarnation || d.Container != g.ContainerID || d.Instance != g.InstanceID {
			t.Fatalf("%+v makes a bad report: %v", g, err)
		}
	})
}

func TestAzureReportReady(t *testing.T) {
	f, c := newFake(t, map[string]string{"x-ms-version": azureWireVersion}, map[string]string{
		"GET /machine/?comp=goalstate": goalStateXML,
		"POST /machine/?comp=health":   "",
	})
	g, err := c.azureReportReady(context.Background())
	if err != nil || g.InstanceID != "79247837105c4470b89352eda4b10942.vm-1" {
		t.Fatalf("got %+v, %v", g, err)
	}
	if len(f.posts) != 1 {
		t.Fatalf("%d reports, want 1", len(f.posts))
	}
	ct, rest, _ := strings.Cut(f.posts[0], "|")
	agent, body, _ := strings.Cut(rest, "|")
	var d healthDoc
	if err := xml.Unmarshal([]byte(body), &d); err != nil || ct != "text/xml; charset=utf-8" || agent != azureAgentName || d.Container != g.ContainerID || d.State != "Ready" {
		t.Errorf("report: %q %q %+v %v", ct, agent, d, err)
	}
}
