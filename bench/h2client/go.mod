module kport.dev/bench/h2client

go 1.22
