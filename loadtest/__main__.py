from loadtest.cli.main import main

main()
