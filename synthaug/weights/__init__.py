"""synthaug.weights"""
