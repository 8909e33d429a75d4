"""From a configuration to records: a job prepared and checked before any model loads (`job`),
executed with resume and failure accounting (`execute`, `failures`), its data moved one way
through preprocessing, encoder and answerer (`runner`), and written atomically (`store`) under
its identity (`identity`)."""
