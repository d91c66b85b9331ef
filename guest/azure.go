package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// Azure's provisioning handshake. A VM made from an image without
// Azure's agent must tell the wire server it is ready, else Azure waits
// for it and marks its provisioning failed: the guest reads its goal
// state (which names the container and the role instance it is), then
// posts a health report saying Ready for that instance. The wire
// protocol's version is 2012-11-30.
const (
	azureWireVersion = "2012-11-30"
	azureAgentName   = "nos-init"
	azureReadyTries  = 5
	azureReadyPause  = 2 * time.Second
	maxGoalStateItem = 256 // bytes in one id the goal state names
)

// goalState is what the health report needs of the wire server's goal
// state.
type goalState struct {
	Incarnation, ContainerID, InstanceID string
}

// parseGoalState extracts the incarnation, the container's id and the
// first role instance's id from a goal state document. It is not an XML
// parser: it finds the elements by their plain tags (the wire server
// writes them without namespaces or attributes), in their places
// (GoalState/Incarnation, Container/ContainerId,
// Container/RoleInstanceList/RoleInstance/InstanceId), and accepts as a
// value only a short run of characters that cannot be markup, so that it
// can go back verbatim into the report.
func parseGoalState(b []byte) (goalState, error) {
	var g goalState
	var err error
	if g.Incarnation, err = xmlText(b, "Incarnation"); err != nil {
		return g, err
	}
	container, ok := xmlElement(b, "Container")
	if !ok {
		return g, errors.New("goal state has no Container")
	}
	if g.ContainerID, err = xmlText(container, "ContainerId"); err != nil {
		return g, err
	}
	list, ok := xmlElement(container, "RoleInstanceList")
	if !ok {
		return g, errors.New("goal state has no RoleInstanceList")
	}
	role, ok := xmlElement(list, "RoleInstance")
	if !ok {
		return g, errors.New("goal state has no RoleInstance")
	}
	if g.InstanceID, err = xmlText(role, "InstanceId"); err != nil {
		return g, err
	}
	return g, nil
}

// xmlElement returns what lies between the first <name> and the first
// </name> after it.
func xmlElement(b []byte, name string) ([]byte, bool) {
	open, end := []byte("<"+name+">"), []byte("</"+name+">")
	i := bytes.Index(b, open)
	if i < 0 {
		return nil, false
	}
	rest := b[i+len(open):]
	j := bytes.Index(rest, end)
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

// xmlText is the text of element name in b: trimmed, non-empty, at most
// maxGoalStateItem bytes of letters, digits and -._:{}.
func xmlText(b []byte, name string) (string, error) {
	v, ok := xmlElement(b, name)
	if !ok {
		return "", fmt.Errorf("goal state has no %s", name)
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 || len(v) > maxGoalStateItem {
		return "", fmt.Errorf("goal state's %s is empty or longer than %d bytes", name, maxGoalStateItem)
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || bytes.IndexByte([]byte("-._:{}"), c) >= 0) {
			return "", fmt.Errorf("goal state's %s has a byte %#02x that an id does not", name, c)
		}
	}
	return string(v), nil
}

// healthReport is the document that reports g's role instance Ready.
// g's values are parseGoalState's: they hold no markup.
func healthReport(g goalState) []byte {
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="utf-8"?>
<Health xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <GoalStateIncarnation>%s</GoalStateIncarnation>
  <Container>
    <ContainerId>%s</ContainerId>
    <RoleInstanceList>
      <Role>
        <InstanceId>%s</InstanceId>
        <Health>
          <State>Ready</State>
        </Health>
      </Role>
    </RoleInstanceList>
  </Container>
</Health>
`, g.Incarnation, g.ContainerID, g.InstanceID)
}

// azureReportReady reads the goal state and reports Ready, trying a few
// times: the wire server may not answer in the first seconds.
func (c metadataClient) azureReportReady(ctx context.Context) (goalState, error) {
	var (
		g   goalState
		err error
	)
	for try := range azureReadyTries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return g, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			case <-time.After(azureReadyPause):
			}
		}
		if g, err = c.azureReadyOnce(ctx); err == nil {
			return g, nil
		}
	}
	return g, err
}

func (c metadataClient) azureReadyOnce(ctx context.Context) (goalState, error) {
	version := [2]string{"x-ms-version", azureWireVersion}
	b, err := fetch(ctx, c.Wire, httpRequest{Method: "GET", Path: "/machine/?comp=goalstate", Host: azureWireHost,
		Header: [][2]string{version}})
	if err != nil {
		return goalState{}, fmt.Errorf("reading the goal state: %w", err)
	}
	g, err := parseGoalState(b)
	if err != nil {
		return g, err
	}
	_, err = fetch(ctx, c.Wire, httpRequest{Method: "POST", Path: "/machine/?comp=health", Host: azureWireHost,
		Header: [][2]string{{"Content-Type", "text/xml; charset=utf-8"}, {"x-ms-agent-name", azureAgentName}, version},
		Body:   healthReport(g)})
	if err != nil {
		return g, fmt.Errorf("reporting ready: %w", err)
	}
	return g, nil
}
