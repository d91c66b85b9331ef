package instance

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
)

func TestNormalizeNetworks(t *testing.T) {
	for _, c := range []struct {
		in   []NetworkRequest
		want []NetworkRequest
		none bool
		bad  bool
	}{
		{in: nil},
		{in: []NetworkRequest{{Name: "default"}}},
		{in: []NetworkRequest{{Name: "none"}}, none: true},
		{in: []NetworkRequest{{Name: "a", IP: "10.0.0.5"}, {Name: "b"}}, want: []NetworkRequest{{Name: "a", IP: "10.0.0.5"}, {Name: "b"}}},
		{in: []NetworkRequest{{Name: "none"}, {Name: "a"}}, bad: true},
		{in: []NetworkRequest{{Name: "default"}, {Name: "a"}}, bad: true},
		{in: []NetworkRequest{{Name: "default", IP: "10.0.0.5"}}, bad: true},
	} {
		got, none, err := NormalizeNetworks(c.in)
		if c.bad {
			if !errors.Is(err, ErrBadFlag) {
				t.Errorf("%v: %v, want ErrBadFlag", c.in, err)
			}
			continue
		}
		if err != nil || none != c.none || !cmp.Equal(got, c.want) {
			t.Errorf("%v: %v %v %v", c.in, got, none, err)
		}
	}
}

func TestGuestNetworks(t *testing.T) {
	got := guestNetworks([]NetworkAttachment{
		{Network: "front", Addr: "10.90.0.3", Bits: 24, Gateway: "10.90.0.1", MAC: "52:54:0a:5a:00:03"},
		{Network: "back", Addr: "10.90.1.2", Bits: 24, Gateway: "10.90.1.1", MAC: "52:54:0a:5a:01:02"},
	})
	want := []guestapi.Network{
		{Interface: "eth0", MAC: "52:54:0a:5a:00:03", Address: "10.90.0.3/24", Gateway: "10.90.0.1", DNS: []string{"10.90.0.1"}},
		{Interface: "eth1", MAC: "52:54:0a:5a:01:02", Address: "10.90.1.2/24", Gateway: "10.90.1.1", DNS: []string{"10.90.1.1"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("guestNetworks (-want +got):\n%s", diff)
	}
}

func TestCheckNetworks(t *testing.T) {
	cur := image.Config{InitAPI: image.InitAPI}
	old := image.Config{InitAPI: image.InitAPIShares}
	noNet := image.Config{InitAPI: image.InitAPI, Kernel: image.KernelInfo{NoNetwork: true}}
	two := Options{Networks: []NetworkRequest{{Name: "a"}, {Name: "b"}}}
	for _, c := range []struct {
		name string
		o    Options
		cfg  image.Config
	}{
		{"the same network twice", Options{Networks: []NetworkRequest{{Name: "a"}, {Name: "a"}}}, cur},
		{"too many", Options{Networks: []NetworkRequest{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}, {Name: "e"}}}, cur},
		{"a kernel without networking", Options{Networks: []NetworkRequest{{Name: "a"}}}, noNet},
		{"an older init on two networks", two, old},
	} {
		if err := checkNetworks(c.o, c.cfg, "img"); !errors.Is(err, ErrBadFlag) {
			t.Errorf("%s: %v, want ErrBadFlag", c.name, err)
		}
	}
	if err := checkNetworks(Options{}, noNet, "img"); err != nil {
		t.Errorf("no networks: %v", err)
	}
}
