package compose

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Order returns the services' names in start order: every service after
// those it depends on, ties broken by name. A cycle is an error that
// names it.
func Order(services map[string]Service) ([]string, error) {
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var order, path []string
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case done:
			return nil
		case visiting:
			i := slices.Index(path, n)
			cycle := append(slices.Clone(path[i:]), n)
			return fmt.Errorf("%w: %s", ErrCycle, strings.Join(cycle, " -> "))
		}
		state[n] = visiting
		path = append(path, n)
		deps := services[n].DependsOn
		names := make([]string, 0, len(deps))
		for _, d := range deps {
			if _, ok := services[d.Service]; ok {
				names = append(names, d.Service)
			}
		}
		slices.Sort(names)
		for _, d := range names {
			if err := visit(d); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		order = append(order, n)
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(services)) {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}
