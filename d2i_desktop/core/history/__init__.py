"""Every picture findable and reproducible: the record inside each output, the SQLite index of outputs,
reproducing a record, and reading what other tools wrote into their pictures. No Qt here."""
