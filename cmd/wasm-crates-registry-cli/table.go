package main

import (
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

type table struct{ w *tabwriter.Writer }

func newTable() *table { return &table{tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)} }

func (t *table) row(cols ...string) {
	for i, c := range cols {
		cols[i] = strings.ReplaceAll(c, "\t", " ")
	}
	t.w.Write([]byte(strings.Join(cols, "\t") + "\n"))
}

func (t *table) kv(k, v string) { t.row(k, v) }

func (t *table) flush() error { return t.w.Flush() }

func sortStrings(s []string) { sort.Strings(s) }
