package image

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestMergeEnv(t *testing.T) {
	cases := []struct {
		name            string
		base, overrides []string
		want            []string
	}{
		{"both empty", nil, nil, nil},
		{"no overrides", []string{"A=1", "B=2"}, nil, []string{"A=1", "B=2"}},
		{"empty base", nil, []string{"A=1", "B=2"}, []string{"A=1", "B=2"}},
		{
			"override in place, new keys appended in order",
			[]string{"A=1", "B=2", "C=3"},
			[]string{"Z=26", "B=20", "D=4", "A=10"},
			[]string{"A=10", "B=20", "C=3", "Z=26", "D=4"},
		},
		{"later override wins", []string{"A=1"}, []string{"N=1", "A=2", "N=2", "A=3"}, []string{"A=3", "N=2"}},
		{"empty value overrides", []string{"A=1"}, []string{"A="}, []string{"A="}},
		{"key is up to the first =", []string{"A=x=y"}, []string{"A=z"}, []string{"A=z"}},
		{"similar keys are distinct", []string{"A=1", "AB=2"}, []string{"A_=3", "AB=4"}, []string{"A=1", "AB=4", "A_=3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := append([]string(nil), tc.base...)
			got := MergeEnv(base, tc.overrides)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("MergeEnv(%q, %q) mismatch (-want +got):\n%s", tc.base, tc.overrides, diff)
			}
			if diff := cmp.Diff(tc.base, base); diff != "" {
				t.Errorf("MergeEnv modified its base (-before +after):\n%s", diff)
			}
		})
	}
}
