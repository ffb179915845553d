from fpkit.cli.app import main

main()
