from gitmodel.cli import main

main()
