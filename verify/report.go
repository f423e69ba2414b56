package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) error {
	verdict := "VALID: no anomalies"
	if !r.Valid {
		verdict = "INVALID: anomalies found"
	}
	_, err := fmt.Fprintf(w, "topic %s: %s\n"+
		"writes %d: acked %d, unknown %d, failed %d\n"+
		"reads: %d sessions, %d polls, %d records, %d distinct values; acked values read %d (by final readers %d); redeliveries %d (%d received after later offsets)\n",
		r.Topic, verdict, r.Writes, r.Acked, r.Unknown, r.Failed,
		r.Sessions, r.Polls, r.RecordsRead, r.ValuesRead, r.AckedRead, r.FinalRead, r.Redeliveries, r.LateRedelivered)
	if err != nil {
		return err
	}
	if r.Superseded > 0 {
		fmt.Fprintf(w, "superseded (compacted away, a later record of the key read): %d\n", r.Superseded)
	}
	for _, a := range r.Anomalies {
		extra := ""
		if a.Class == Skipped && r.SkippedOffsets > 0 {
			extra = fmt.Sprintf(" (%d offsets)", r.SkippedOffsets)
		}
		fmt.Fprintf(w, "  %-20s %d%s\n", a.Class, a.Count, extra)
		for _, ex := range a.Examples {
			fmt.Fprintf(w, "      %s\n", ex)
		}
	}
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %s\n", k, r.Extra[k])
	}
	return nil
}

// WriteJSON prints the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
