module example.com/mixed/tools

go 1.26
