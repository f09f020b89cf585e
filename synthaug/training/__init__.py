"""synthaug.training"""
