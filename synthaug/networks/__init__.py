"""synthaug.networks"""
