package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/template"
)

// printInspected prints what an inspect verb found: an indented JSON
// array, as docker inspect does, or each item with --format.
func printInspected(w io.Writer, format string, items any) error {
	if format != "" && format != "json" {
		return printFormatted(w, format, items)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(items)
}

// printFormatted prints each item with --format: "json" for one JSON object
// per line, otherwise a Go template applied to each item, as docker does.
func printFormatted(w io.Writer, format string, items any) error {
	v := reflect.ValueOf(items)
	if format == "json" {
		enc := json.NewEncoder(w)
		for i := 0; i < v.Len(); i++ {
			if err := enc.Encode(v.Index(i).Interface()); err != nil {
				return err
			}
		}
		return nil
	}
	tmpl, err := template.New("format").Funcs(template.FuncMap{
		"json":  func(x any) (string, error) { b, err := json.Marshal(x); return string(b), err },
		"join":  strings.Join,
		"upper": strings.ToUpper,
		"lower": strings.ToLower,
	}).Parse(format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	for i := 0; i < v.Len(); i++ {
		var b strings.Builder
		if err := tmpl.Execute(&b, v.Index(i).Interface()); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(w, b.String())
	}
	return nil
}
