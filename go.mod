module github.com/kopernik-io/kopernik

go 1.26
