"""`python -m ai_employee` runs the `vault` CLI."""

from ai_employee.cli import main

if __name__ == "__main__":
    main()
