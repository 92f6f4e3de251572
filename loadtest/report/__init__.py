"""Reports: terminal tables now; markdown, HTML and JUnit later."""
