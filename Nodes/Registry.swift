// The node registry lives here.
